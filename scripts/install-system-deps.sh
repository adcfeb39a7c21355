#!/usr/bin/env bash
# Installs the Debian packages the tests and the demo need, when they are missing:
# openssh-server (sshd), openssh-client (ssh-keygen, ssh), age (age, age-keygen).
# As root it runs apt-get; otherwise it names the packages and stops.
set -euo pipefail

need=()
command -v sshd >/dev/null 2>&1 || [ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v ssh-keygen >/dev/null 2>&1 || need+=(openssh-client)
command -v age-keygen >/dev/null 2>&1 || need+=(age)
command -v dash >/dev/null 2>&1 || need+=(dash)

if ((${#need[@]} == 0)); then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "missing Debian packages: ${need[*]}" >&2
  echo "install them with: sudo apt-get install -y ${need[*]}" >&2
  exit 1
fi
echo "installing Debian packages: ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
