#!/bin/sh
# carry-libs.sh BINARY LIBDIR: copies into LIBDIR every shared library BINARY loads (ldd's
# list, so its dependencies' dependencies too) except glibc's own, which every Linux has
# and which must match the kernel's loader. The binary is linked with an RPATH of
# $ORIGIN/../lib (DT_RPATH, which ld.so also applies to the libraries it loads), so LIBDIR
# is bin/../lib. Prints the libraries it copied.
set -eu
bin=$1
dir=$2
mkdir -p "$dir"
ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $1, $3 }' | while read -r name path; do
	case $name in
	libc.so.* | libm.so.* | libpthread.so.* | libdl.so.* | librt.so.* | libresolv.so.* | \
	ld-linux*.so.* | libutil.so.* | libanl.so.* | libnsl.so.* | libBrokenLocale.so.*)
		continue ;;
	esac
	cp -L "$path" "$dir/$name"
	chmod 644 "$dir/$name"
	echo "$name"
done
