/* openrpc.c: protocol/openrpc.json, built into the binary for rpc.discover.
 *
 * The document is the wire contract's source of truth; embedding it means the broker
 * always serves the contract it was built with, wherever it is installed.
 */
__asm__(".section .rodata\n"
	".global openrpc_document\n"
	".type openrpc_document, @object\n"
	"openrpc_document:\n"
	".incbin \"protocol/openrpc.json\"\n"
	".byte 0\n"
	".previous\n");
