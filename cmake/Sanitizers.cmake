# SPDX-License-Identifier: MIT
# ringcast_sanitizers: RINGCAST_SANITIZE="address;undefined" or "thread".
add_library(ringcast_sanitizers INTERFACE)
if(RINGCAST_SANITIZE)
  string(REPLACE ";" "," _san "${RINGCAST_SANITIZE}")
  target_compile_options(ringcast_sanitizers INTERFACE -fsanitize=${_san}
                         -fno-sanitize-recover=all -fno-omit-frame-pointer)
  target_link_options(ringcast_sanitizers INTERFACE -fsanitize=${_san})
endif()

# Fuzzer builds instrument the whole engine for coverage (the parsers live in the libraries,
# not in the fuzz targets), and run everything under ASan+UBSan, where a UBSan report stops the
# run (-fno-sanitize-recover) so that libFuzzer keeps the input as a finding.
if(RINGCAST_BUILD_FUZZERS)
  target_compile_options(ringcast_sanitizers INTERFACE
                         -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all
                         -fno-omit-frame-pointer)
  target_link_options(ringcast_sanitizers INTERFACE -fsanitize=address,undefined)
endif()
