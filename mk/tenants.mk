# ---- tenants, quotas, audit, admin view and the status page ---------------------------------
# The status page is .incbin'd, so the compiler's dependency list does not name it.
$(B)/obj/broker/api/status_page.o: broker/api/status.html broker/api/status.js broker/api/status.css
