# Standalone asio (Debian's libasio-dev) ships headers only, no CMake package.
# This makes it an imported target, asio::asio, with the defines and thread
# library it needs. Used by the build tree and by the installed qmpConfig.
if(NOT TARGET asio::asio)
  find_path(QMP_ASIO_INCLUDE_DIR NAMES asio.hpp
            HINTS ENV ASIO_ROOT PATH_SUFFIXES include
            DOC "Directory holding standalone asio's asio.hpp")
  if(NOT QMP_ASIO_INCLUDE_DIR)
    message(FATAL_ERROR "standalone asio not found (Debian: apt-get install libasio-dev; or set ASIO_ROOT)")
  endif()
  find_package(Threads REQUIRED)
  add_library(asio::asio INTERFACE IMPORTED)
  set_target_properties(asio::asio PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES "${QMP_ASIO_INCLUDE_DIR}"
    INTERFACE_COMPILE_DEFINITIONS "ASIO_STANDALONE;ASIO_NO_DEPRECATED"
    INTERFACE_LINK_LIBRARIES Threads::Threads)
endif()
