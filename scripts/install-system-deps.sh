#!/usr/bin/env bash
# Installs the Debian packages the tests and the demo need, when they are missing:
# openssh-server (sshd), openssh-client (ssh-keygen, ssh), sudo (the --become tests),
# age (age, age-keygen), gnupg (gpg: the PGP key backend), and the real readers the
# fidelity tests read back with: dash, systemd (libsystemd-shared's load_env_file),
# nodejs and npm (Node's util.parseEnv and the npm dotenv package).
# As root it runs apt-get; otherwise it names the packages and stops.
# `install-system-deps.sh demo`: only what `make demo` needs (sshd, ssh-keygen, age).
set -euo pipefail

need=()
command -v sshd >/dev/null 2>&1 || [ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v ssh-keygen >/dev/null 2>&1 || need+=(openssh-client)
command -v sudo >/dev/null 2>&1 || need+=(sudo)
command -v age-keygen >/dev/null 2>&1 || need+=(age)
if [ "${1:-}" != demo ]; then
  command -v dash >/dev/null 2>&1 || need+=(dash)
  compgen -G '/usr/lib/*/systemd/libsystemd-shared-*.so' >/dev/null || need+=(systemd)
  command -v node >/dev/null 2>&1 || need+=(nodejs)
  command -v npm >/dev/null 2>&1 || need+=(npm)
  command -v gpg >/dev/null 2>&1 || need+=(gnupg)
fi

if ((${#need[@]} == 0)); then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "missing Debian packages: ${need[*]}" >&2
  echo "install them with: sudo apt-get install -y ${need[*]}" >&2
  exit 1
fi
echo "installing Debian packages: ${need[*]} (apt-get, a minute or two) …" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
