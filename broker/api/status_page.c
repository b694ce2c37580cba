/* status_page.c: broker/api/status.html, built into the binary for GET /. */
__asm__(".section .rodata\n"
	".global status_page\n"
	".type status_page, @object\n"
	"status_page:\n"
	".incbin \"broker/api/status.html\"\n"
	".byte 0\n"
	".previous\n");
