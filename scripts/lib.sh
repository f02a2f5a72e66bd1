# Shared set-up steps for scripts/dev and scripts/test (sourced, not run).

# Debian packages, installed with apt-get (as root, or through sudo).
apt_install() {
  echo "$* missing: installing with apt-get" >&2
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

# redis-server from Debian's packages when the machine has none.
ensure_redis_server() {
  command -v redis-server >/dev/null 2>&1 || apt_install redis-server
}

# nginx (the buffering proxy of deploy/nginx.conf, run by tests/security) and envsubst (which
# renders that template) from Debian's packages when missing. Debian's nginx lives in
# /usr/sbin, which a non-root PATH may lack, hence the second look. Under systemd the package
# also starts its stock site on port 80; the tests never use it (systemctl disable --now nginx).
ensure_nginx() {
  local packages=()
  command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || packages+=(nginx)
  command -v envsubst >/dev/null 2>&1 || packages+=(gettext-base)
  [ ${#packages[@]} -eq 0 ] || apt_install "${packages[@]}"
}

# curl and jq, which the README's walkthrough uses (tests/integration/test_readme.py runs it).
ensure_cli_tools() {
  local packages=()
  command -v curl >/dev/null 2>&1 || packages+=(curl)
  command -v jq >/dev/null 2>&1 || packages+=(jq)
  [ ${#packages[@]} -eq 0 ] || apt_install "${packages[@]}"
}

# Debian's Chromium, which the browser tests (tests/browser/, tests/support/browser.py) drive
# through Playwright; Playwright's own browser downloads are never used.
ensure_chromium() {
  [ -x /usr/bin/chromium ] || apt_install chromium
}

# A virtualenv in .venv with the locked dependencies, then the project itself (editable):
# "." installs requirements.txt, ".[test]" requirements-test.txt (scripts/lock makes both).
# Every distribution is checked against the lock's hashes; the project, a local path with no
# published hash, is installed alone (--no-deps), built by the locked setuptools. Reinstalled
# only when pyproject.toml or a lock changes.
ensure_venv() {
  local spec="$1" python="${PYTHON:-python3}"
  local extras="${spec//[^a-z]/}"
  local lock="requirements${extras:+-$extras}.txt"
  if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "Python 3.11 or newer is required (found: $("$python" --version 2>&1))" >&2
    exit 1
  fi
  if [ ! -f "$lock" ]; then
    echo "$lock is missing: run scripts/lock" >&2
    exit 1
  fi
  [ -x .venv/bin/python ] || "$python" -m venv .venv
  local sum
  sum=$(cat pyproject.toml requirements-build.txt "$lock" | sha1sum | cut -c1-12)
  local stamp=".venv/.installed-$sum-$extras"
  if [ ! -f "$stamp" ]; then
    .venv/bin/python -m pip install -q --upgrade pip >/dev/null
    .venv/bin/python -m pip install -q --require-hashes -r requirements-build.txt -r "$lock"
    .venv/bin/python -m pip install -q --no-deps --no-build-isolation -e .
    touch "$stamp"
  fi
}

# The example helpdesk plug-in (tests/plugins/example_desk), installed the way a third
# party's adapter is: its own package, found through the bridge's entry-point group.
ensure_example_plugin() {
  local sum
  sum=$(sha1sum tests/plugins/example_desk/pyproject.toml | cut -c1-12)
  local stamp=".venv/.plugin-$sum"
  if [ ! -f "$stamp" ]; then
    .venv/bin/python -m pip install -q --no-deps --no-build-isolation -e tests/plugins/example_desk
    touch "$stamp"
  fi
}

# scripts/dev's state folder: generated secrets (kept from one run to the next, so Botpress's
# URL keeps working) in $1/env, and Redis's data in $1/redis. They are this user's alone:
# created private, and made private again should an older run have left them readable.
ensure_private_state() {
  local state="$1" python="$2"
  (umask 077 && mkdir -p "$state/redis")
  chmod 700 "$state" "$state/redis"
  if [ ! -f "$state/env" ]; then
    (umask 077 && "$python" - > "$state/env") <<'PY'
import secrets
print(f"BRIDGE_SECRET={secrets.token_urlsafe(24)}")
print(f"ADMIN_TOKEN={secrets.token_urlsafe(24)}")
PY
  fi
  chmod 600 "$state/env"
}

# Sets NAME=VALUE in the env file FILE (replacing an earlier NAME line), keeping it private.
set_env_line() {
  local file="$1" name="$2" value="$3"
  (umask 077 && grep -v "^$name=" "$file" > "$file.new" || true)
  echo "$name=$value" >> "$file.new"
  chmod 600 "$file.new"
  mv "$file.new" "$file"
}
