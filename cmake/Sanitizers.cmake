# SPDX-License-Identifier: MIT
# ringcast_sanitizers: RINGCAST_SANITIZE="address;undefined" or "thread".
add_library(ringcast_sanitizers INTERFACE)
if(RINGCAST_SANITIZE)
  string(REPLACE ";" "," _san "${RINGCAST_SANITIZE}")
  target_compile_options(ringcast_sanitizers INTERFACE -fsanitize=${_san}
                         -fno-sanitize-recover=all -fno-omit-frame-pointer)
  target_link_options(ringcast_sanitizers INTERFACE -fsanitize=${_san})
endif()
