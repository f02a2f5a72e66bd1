# Shared set-up steps for scripts/dev and scripts/test (sourced, not run).

# redis-server from Debian's packages when the machine has none.
ensure_redis_server() {
  command -v redis-server >/dev/null 2>&1 && return 0
  echo "redis-server is missing: installing it with apt-get" >&2
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server >/dev/null
}

# nginx (the buffering proxy of deploy/nginx.conf, run by tests/security) and envsubst (which
# renders that template) from Debian's packages when missing. Debian's nginx lives in
# /usr/sbin, which a non-root PATH may lack, hence the second look. Under systemd the package
# also starts its stock site on port 80; the tests never use it (systemctl disable --now nginx).
ensure_nginx() {
  local packages=()
  command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || packages+=(nginx)
  command -v envsubst >/dev/null 2>&1 || packages+=(gettext-base)
  [ ${#packages[@]} -eq 0 ] && return 0
  echo "${packages[*]} missing: installing with apt-get" >&2
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${packages[@]}" >/dev/null
}

# A virtualenv in .venv with the project installed (editable) plus the given extras;
# reinstalled only when pyproject.toml changes.
ensure_venv() {
  local spec="$1" python="${PYTHON:-python3}"
  if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "Python 3.11 or newer is required (found: $("$python" --version 2>&1))" >&2
    exit 1
  fi
  [ -x .venv/bin/python ] || "$python" -m venv .venv
  local stamp=".venv/.installed-$(sha1sum pyproject.toml | cut -c1-12)-${spec//[^a-z]/}"
  if [ ! -f "$stamp" ]; then
    .venv/bin/python -m pip install -q --upgrade pip >/dev/null
    .venv/bin/python -m pip install -q -e "$spec"
    touch "$stamp"
  fi
}
