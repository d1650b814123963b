# SPDX-License-Identifier: MIT
# Finds mbedtls 2.28 (Debian libmbedtls-dev): MbedTLS::mbedtls, ::mbedx509, ::mbedcrypto.
find_path(MBEDTLS_INCLUDE_DIR mbedtls/ssl.h)
find_library(MBEDTLS_LIBRARY mbedtls)
find_library(MBEDX509_LIBRARY mbedx509)
find_library(MBEDCRYPTO_LIBRARY mbedcrypto)
include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(MbedTLS DEFAULT_MSG MBEDTLS_INCLUDE_DIR MBEDTLS_LIBRARY
                                  MBEDX509_LIBRARY MBEDCRYPTO_LIBRARY)
if(MbedTLS_FOUND)
  foreach(lib mbedcrypto mbedx509 mbedtls)
    string(TOUPPER ${lib} LIB)
    add_library(MbedTLS::${lib} UNKNOWN IMPORTED)
    set_target_properties(MbedTLS::${lib} PROPERTIES IMPORTED_LOCATION ${${LIB}_LIBRARY}
                          INTERFACE_INCLUDE_DIRECTORIES ${MBEDTLS_INCLUDE_DIR})
  endforeach()
  set_property(TARGET MbedTLS::mbedx509 PROPERTY INTERFACE_LINK_LIBRARIES MbedTLS::mbedcrypto)
  set_property(TARGET MbedTLS::mbedtls PROPERTY INTERFACE_LINK_LIBRARIES MbedTLS::mbedx509)
endif()
