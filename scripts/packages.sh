# Installs the Debian packages headroom needs, only if some are missing.
# Sourced by scripts/run-default and scripts/test.
HEADROOM_PACKAGES=(build-essential cmake pkg-config libuv1-dev libhiredis-dev libyaml-cpp-dev
  libspdlog-dev libssl-dev openssl doctest-dev libhttp-parser-dev prometheus-cpp-dev prometheus prometheus-redis-exporter chromium redis-server redis-tools python3 python3-pytest python3-redis
  nutcracker docker-compose valgrind)

install_missing_packages() {
  local missing=()
  for p in "${HEADROOM_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  # Node.js may come from elsewhere than Debian (it does on some images): only a
  # missing `node`/`npm` command asks for Debian's packages.
  command -v node >/dev/null 2>&1 || missing+=(nodejs)
  command -v npm >/dev/null 2>&1 || missing+=(npm)
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "installing: ${missing[*]}"
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
  # The redis-server package may start a system service on 6379; headroom's runs
  # never use that port, so it is left as the package set it up.
}
