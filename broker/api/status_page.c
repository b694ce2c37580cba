/* status_page.c: the status page's files (broker/api/status.{html,js,css}), built into the
 * binary for GET /, /status.js and /status.css. The script and the style sheet are files
 * of their own because the broker's Content-Security-Policy forbids inline ones. */
__asm__(".section .rodata\n"
	".global status_page_html\n"
	".type status_page_html, @object\n"
	"status_page_html:\n"
	".incbin \"broker/api/status.html\"\n"
	".byte 0\n"
	".global status_page_js\n"
	".type status_page_js, @object\n"
	"status_page_js:\n"
	".incbin \"broker/api/status.js\"\n"
	".byte 0\n"
	".global status_page_css\n"
	".type status_page_css, @object\n"
	"status_page_css:\n"
	".incbin \"broker/api/status.css\"\n"
	".byte 0\n"
	".previous\n");
