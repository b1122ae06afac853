# Turns datasets/catalog.json into a C source holding its bytes, so the hydralora binary
# carries its catalog and needs no source tree at run time.
#   cmake -DIN=datasets/catalog.json -DOUT=<build>/generated/catalog_builtin.c -P embed_catalog.cmake
# The array gets a trailing NUL (not counted by hl_catalog_builtin()).
file(READ "${IN}" hex HEX)
string(LENGTH "${hex}" n_hex)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," body "${hex}")
# Break the single line every 24 bytes so compilers and editors stay happy.
string(REGEX REPLACE "((0x[0-9a-f][0-9a-f],){24})" "\\1\n" body "${body}")
file(WRITE "${OUT}.tmp"
  "/* Generated from datasets/catalog.json by datasets/embed_catalog.cmake. Do not edit. */\n"
  "#include <stddef.h>\n"
  "const unsigned char hl_catalog_json_builtin[] = {\n${body}0x00};\n"
  "const size_t hl_catalog_json_builtin_len = sizeof hl_catalog_json_builtin;\n")
# configure_file(COPYONLY) writes only when the bytes changed, so an unchanged catalog
# does not relink everything.
configure_file("${OUT}.tmp" "${OUT}" COPYONLY)
file(REMOVE "${OUT}.tmp")
