# CMake package config for zcfuse: find_package(zcfuse) gives the imported
# target zcfuse::zcfuse (libzcfuse.so and include/zcfuse.h).
get_filename_component(_zcfuse_prefix "${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)
if(NOT TARGET zcfuse::zcfuse)
  add_library(zcfuse::zcfuse SHARED IMPORTED)
  set_target_properties(zcfuse::zcfuse PROPERTIES
    IMPORTED_LOCATION "${_zcfuse_prefix}/lib/libzcfuse.so.@SOVERSION@"
    IMPORTED_SONAME "libzcfuse.so.@SOVERSION@"
    INTERFACE_INCLUDE_DIRECTORIES "${_zcfuse_prefix}/include")
endif()
set(zcfuse_VERSION "@VERSION@")
unset(_zcfuse_prefix)
