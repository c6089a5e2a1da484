#!/usr/bin/env bash
# The JDK HttpClient test (FerrumClientTest.java, run from source: no build tool, no jars).
# Installs a headless JDK with apt when `java` or `javac` is missing (the source launcher needs
# the compiler, so a JRE is not enough). Needs E2E_URL, E2E_KEY, E2E_MODEL of a running server.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if ! command -v java >/dev/null || ! command -v javac >/dev/null; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  echo "installing a JDK with apt" >&2
  $sudo apt-get update -qq
  # Slim Debian images leave out /usr/share/man, where the JDK's postinst links its man pages.
  $sudo mkdir -p /usr/share/man/man1
  # Debian 12 has openjdk-17; later releases name their current JDK default-jdk-headless.
  install="$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends"
  $install openjdk-17-jdk-headless >/dev/null || $install default-jdk-headless >/dev/null
  hash -r
fi
java -version 2>&1 | head -1 >&2
exec java "$here/FerrumClientTest.java"
