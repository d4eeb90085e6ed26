# FindCLBlast.cmake - finds the CLBlast library and header.
#
# Searches CMAKE_PREFIX_PATH and the system, so CLBlast unpacked under any
# prefix is found. Defines CLBlast_FOUND and the imported target CLBlast::CLBlast.
# (CLBlast's own CMake config hard-codes the OpenCL library's /usr path, so we
# do not rely on it.)

find_path(CLBlast_INCLUDE_DIR NAMES clblast_c.h)
find_library(CLBlast_LIBRARY NAMES clblast)

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(CLBlast REQUIRED_VARS CLBlast_LIBRARY CLBlast_INCLUDE_DIR)

if(CLBlast_FOUND AND NOT TARGET CLBlast::CLBlast)
  add_library(CLBlast::CLBlast UNKNOWN IMPORTED)
  set_target_properties(CLBlast::CLBlast PROPERTIES
    IMPORTED_LOCATION "${CLBlast_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${CLBlast_INCLUDE_DIR}")
endif()
mark_as_advanced(CLBlast_INCLUDE_DIR CLBlast_LIBRARY)
