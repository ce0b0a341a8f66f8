# Installs qmp-thin-agent's systemd unit with ExecStart on the prefix being
# installed to, which is known only now: /usr for a Debian package,
# `cmake --install --prefix DIR`'s DIR, else the configured prefix.
# QMP_UNIT_IN and QMP_BINDIR are set by the install(CODE) just before.
if(IS_ABSOLUTE "${QMP_BINDIR}")
  set(CMAKE_INSTALL_FULL_BINDIR "${QMP_BINDIR}")
else()
  set(CMAKE_INSTALL_FULL_BINDIR "${CMAKE_INSTALL_PREFIX}/${QMP_BINDIR}")
endif()
set(unit "$ENV{DESTDIR}${CMAKE_INSTALL_PREFIX}/lib/systemd/system/qmp-thin-agent.service")
message(STATUS "Installing: ${unit}")
configure_file("${QMP_UNIT_IN}" "${unit}" @ONLY)
