#!/usr/bin/env bash
# Autoglue bastion bootstrap.
#
# Autoglue pipes this file to `bash -s` over SSH on a freshly created bastion, with the
# toggles below set as an `env NAME=VALUE ...` prefix of the remote command. The combined
# output is streamed to operators, so the script never uses `set -x`; it prints its own
# `==> step: <name>` lines instead, and on failure `!! bootstrap failed at step <name> (exit N)`.
# The last line of a successful run is `==> bastion ready`. Running it twice is safe.
#
# Blocks (each 1 = run, 0 = skip; all default to 1):
#   BASELINE_PKGS   curl, git, jq, ... plus ufw/firewalld and the ssh client
#   INSTALL_DOCKER  docker engine, service enabled, ssh user in group docker, compose v2 plugin
#   SSH_HARDEN      /etc/ssh/sshd_config.d/10-bastion.conf (keys only), validated, reloaded, verified
#   FIREWALL        ufw (apt, apk) or firewalld (dnf, yum, zypper); ssh allowed before enabling
#   AUTO_UPDATES    unattended-upgrades / dnf-automatic / yum-cron
#   TIME_SYNC       systemd-timesyncd, else chrony; NTP switched on
#   FAIL2BAN        sshd jail: maxretry 4, findtime 10m, bantime 1h
#   BANNER          /etc/issue.net notice and a Banner line for sshd
# Other settings:
#   WAIT_CLOUD_INIT          1: wait for `cloud-init status --wait` first (exit 2 "degraded" is fine)
#   CLOUD_INIT_TIMEOUT_SECS  upper bound for that wait when `timeout` exists (default 600)
#   APT_LOCK_WAIT_SECS       how long to wait for dpkg/apt locks (default 300)
#   COMPOSE_VERSION          static compose plugin release used as a fallback (default v2.29.7)
#   SSH_USER                 user to add to group docker (default: the user running the script)

set -euo pipefail

readonly BLOCK_TOGGLES=(BASELINE_PKGS INSTALL_DOCKER SSH_HARDEN FIREWALL AUTO_UPDATES TIME_SYNC FAIL2BAN BANNER)
readonly SSHD_DROPIN_DIR=/etc/ssh/sshd_config.d
readonly SSHD_DROPIN="$SSHD_DROPIN_DIR/10-bastion.conf"
readonly SSHD_BANNER_DROPIN="$SSHD_DROPIN_DIR/11-bastion-banner.conf"
readonly BANNER_FILE=/etc/issue.net
readonly BANNER_TEXT="NOTICE: Authorized use only. Activity may be monitored and reported."
readonly APT_LOCK_CONF=/etc/apt/apt.conf.d/90autoglue-lock-timeout
readonly COMPOSE_PLUGIN_DIR=/usr/local/lib/docker/cli-plugins
readonly FAIL2BAN_JAIL=/etc/fail2ban/jail.d/autoglue-sshd.local

STEP="start"
WORKDIR=""
PKG=""
SSHD=""
SSH_PORTS=()
APT_READY=0
LOCK_TOOL_NOTED=0
CHANGED=0
TRY_OK=0

# ---------------------------------------------------------------------------- output

say() { printf '    %s\n' "$*"; }
warn() { printf '!! warning: %s\n' "$*" >&2; }
die() {
  printf '!! %s\n' "$*" >&2
  exit 1
}

on_exit() {
  local rc=$?
  if [[ -n $WORKDIR ]]; then
    rm -rf -- "$WORKDIR" || true
  fi
  if ((rc != 0)); then
    printf '!! bootstrap failed at step %s (exit %d)\n' "$STEP" "$rc" >&2
  fi
  exit "$rc"
}

# ---------------------------------------------------------------------------- helpers

# Run a command as root: directly when we are root, otherwise through non-interactive sudo.
as_root() {
  if ((EUID == 0)); then
    "$@"
  else
    sudo -n "$@"
  fi
}

ensure_root() {
  if ((EUID == 0)); then
    say "running as root"
    return 0
  fi
  if ! command -v sudo >/dev/null 2>&1; then
    die "not running as root and sudo is not installed; the ssh user needs root or passwordless sudo"
  fi
  if ! sudo -n true >/dev/null 2>&1; then
    die "not running as root and 'sudo -n' does not work; the ssh user needs passwordless sudo"
  fi
  say "running as uid $EUID with passwordless sudo"
}

ensure_workdir() {
  if [[ -z $WORKDIR ]]; then
    WORKDIR=$(mktemp -d "${TMPDIR:-/tmp}/autoglue-bootstrap.XXXXXX")
  fi
}

have_systemd() {
  [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null 2>&1
}

unit_exists() {
  systemctl cat -- "$1" >/dev/null 2>&1
}

# install_file PATH MODE CONTENT: write CONTENT (plus a newline) as root-owned PATH with MODE.
# Sets CHANGED=1 when the content differed, 0 when it was already in place.
install_file() {
  local path=$1 mode=$2 content=$3 current=""
  ensure_workdir
  printf '%s\n' "$content" >"$WORKDIR/stage"
  CHANGED=1
  if as_root test -f "$path"; then
    current=$(as_root cat -- "$path")
    if [[ $current == "$content" ]]; then
      CHANGED=0
    fi
  fi
  if ((CHANGED)); then
    as_root install -m "$mode" -o root -g root "$WORKDIR/stage" "$path"
    say "wrote $path"
  else
    as_root chown root:root "$path"
    as_root chmod "$mode" "$path"
    say "$path already up to date"
  fi
}

svc_enable_now() {
  local name=$1
  if have_systemd; then
    as_root systemctl enable --now "$name"
  elif command -v rc-update >/dev/null 2>&1; then
    if ! as_root rc-update add "$name" default >/dev/null 2>&1; then
      warn "rc-update add $name default returned non-zero (already enabled?)"
    fi
    if ! as_root rc-service "$name" status >/dev/null 2>&1; then
      as_root rc-service "$name" start
    fi
  elif command -v service >/dev/null 2>&1; then
    as_root service "$name" start
  else
    die "no init system tool (systemctl, rc-service, service) found to start $name"
  fi
}

svc_restart() {
  local name=$1
  if have_systemd; then
    as_root systemctl restart "$name"
  elif command -v rc-service >/dev/null 2>&1; then
    as_root rc-service "$name" restart
  elif command -v service >/dev/null 2>&1; then
    as_root service "$name" restart
  else
    die "no init system tool (systemctl, rc-service, service) found to restart $name"
  fi
}

# ---------------------------------------------------------------------------- packages

require_pkg_mgr() {
  if [[ -n $PKG ]]; then
    return 0
  fi
  if command -v apt-get >/dev/null 2>&1; then
    PKG=apt
  elif command -v dnf >/dev/null 2>&1; then
    PKG=dnf
  elif command -v yum >/dev/null 2>&1; then
    PKG=yum
  elif command -v zypper >/dev/null 2>&1; then
    PKG=zypper
  elif command -v apk >/dev/null 2>&1; then
    PKG=apk
  else
    die "no supported package manager found (looked for apt-get, dnf, yum, zypper, apk)"
  fi
  say "package manager: $PKG"
}

lock_in_use() {
  case $1 in
    fuser) as_root fuser "$2" >/dev/null 2>&1 ;;
    lsof) as_root lsof -t -- "$2" >/dev/null 2>&1 ;;
    *) return 1 ;;
  esac
}

# Wait (up to APT_LOCK_WAIT_SECS) until no other process holds a dpkg/apt lock,
# e.g. unattended-upgrades running right after first boot.
wait_apt_locks() {
  local tool="" lock held announced=0 deadline
  if command -v fuser >/dev/null 2>&1; then
    tool="fuser"
  elif command -v lsof >/dev/null 2>&1; then
    tool="lsof"
  else
    if ((!LOCK_TOOL_NOTED)); then
      say "neither fuser nor lsof is installed; relying on DPkg::Lock::Timeout"
      LOCK_TOOL_NOTED=1
    fi
    return 0
  fi
  deadline=$((SECONDS + APT_LOCK_WAIT_SECS))
  while :; do
    held=""
    for lock in /var/lib/dpkg/lock-frontend /var/lib/dpkg/lock /var/lib/apt/lists/lock /var/cache/apt/archives/lock; do
      if [[ -e $lock ]] && lock_in_use "$tool" "$lock"; then
        held=$lock
        break
      fi
    done
    if [[ -z $held ]]; then
      return 0
    fi
    if ((SECONDS >= deadline)); then
      die "$held is still held by another process after ${APT_LOCK_WAIT_SECS}s"
    fi
    if ((!announced)); then
      say "waiting for $held (another apt/dpkg run is in progress)"
      announced=1
    fi
    sleep 3
  done
}

apt_prepare() {
  if ((APT_READY)); then
    return 0
  fi
  install_file "$APT_LOCK_CONF" 0644 "DPkg::Lock::Timeout \"$APT_LOCK_WAIT_SECS\";"
  wait_apt_locks
  say "apt-get update"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq -o DPkg::Lock::Timeout="$APT_LOCK_WAIT_SECS"
  APT_READY=1
}

pkg_prepare() {
  require_pkg_mgr
  if [[ $PKG == apt ]]; then
    apt_prepare
    wait_apt_locks
  fi
}

# One installer command per branch, so its exit status is the function's status.
pkg_run_install() {
  case $PKG in
    apt)
      as_root env DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1 \
        apt-get install -y -qq -o DPkg::Lock::Timeout="$APT_LOCK_WAIT_SECS" \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@"
      ;;
    dnf) as_root dnf install -y -q "$@" ;;
    yum) as_root yum install -y -q "$@" ;;
    zypper) as_root zypper --non-interactive --quiet install --no-recommends "$@" ;;
    apk) as_root apk add --no-cache --quiet "$@" ;;
    *) return 1 ;;
  esac
}

pkg_install() {
  pkg_prepare
  say "installing: $*"
  pkg_run_install "$@"
}

# Best effort: sets TRY_OK=1 on success, warns and sets TRY_OK=0 otherwise. Always returns 0,
# so callers run it as a plain statement (errexit stays in force) and then test TRY_OK.
pkg_try() {
  pkg_prepare
  say "installing (optional): $*"
  if pkg_run_install "$@"; then
    TRY_OK=1
  else
    TRY_OK=0
    warn "could not install: $*"
  fi
}

need_cmd() {
  local cmd=$1
  shift
  if ! command -v "$cmd" >/dev/null 2>&1; then
    pkg_install "$@"
  fi
}

# ---------------------------------------------------------------------------- sshd helpers

locate_sshd() {
  local candidate
  if [[ -n $SSHD ]]; then
    return 0
  fi
  for candidate in "$(command -v sshd 2>/dev/null || true)" /usr/sbin/sshd /usr/local/sbin/sshd /sbin/sshd /usr/bin/sshd; do
    if [[ -n $candidate && -x $candidate ]]; then
      SSHD=$candidate
      return 0
    fi
  done
  die "sshd not found (looked in PATH, /usr/sbin, /usr/local/sbin, /sbin, /usr/bin)"
}

require_dropin_dir() {
  if [[ ! -d $SSHD_DROPIN_DIR ]]; then
    die "$SSHD_DROPIN_DIR is missing: this sshd has no drop-in directory, refusing to edit sshd_config"
  fi
}

# Debian-family sshd refuses `-t`/`-T` without its privilege separation directory.
ensure_privsep_dir() {
  if [[ -d /run && ! -d /run/sshd ]]; then
    as_root install -d -m 0755 /run/sshd
  fi
}

sshd_effective_config() {
  local out
  ensure_privsep_dir
  if ! out=$(as_root "$SSHD" -T 2>&1); then
    printf '%s\n' "$out" >&2
    die "sshd -T failed"
  fi
  printf '%s\n' "${out,,}"
}

detect_ssh_ports() {
  local line effective
  SSH_PORTS=()
  if [[ -z $SSHD ]] && ! command -v sshd >/dev/null 2>&1 && [[ ! -x /usr/sbin/sshd ]]; then
    SSH_PORTS=(22)
    return 0
  fi
  locate_sshd
  effective=$(sshd_effective_config)
  while IFS= read -r line; do
    if [[ $line =~ ^port\ ([0-9]+)$ ]]; then
      SSH_PORTS+=("${BASH_REMATCH[1]}")
    fi
  done <<<"$effective"
  if ((${#SSH_PORTS[@]} == 0)); then
    SSH_PORTS=(22)
  fi
  say "ssh port(s): ${SSH_PORTS[*]}"
}

reload_sshd() {
  local unit pid
  if have_systemd; then
    for unit in ssh.service sshd.service; do
      if systemctl is-active --quiet "$unit"; then
        if ! as_root systemctl reload "$unit"; then
          as_root systemctl restart "$unit"
        fi
        say "reloaded $unit (existing sessions stay open)"
        return 0
      fi
    done
    for unit in ssh.socket sshd.socket; do
      if systemctl is-active --quiet "$unit"; then
        say "sshd is socket-activated ($unit); new connections use the new config"
        return 0
      fi
    done
    warn "no running ssh service found; the config applies when sshd next starts"
  elif command -v rc-service >/dev/null 2>&1; then
    as_root rc-service sshd reload
    say "reloaded sshd"
  else
    for pid in /run/sshd.pid /var/run/sshd.pid; do
      if [[ -r $pid ]]; then
        as_root kill -HUP "$(<"$pid")"
        say "sent SIGHUP to sshd"
        return 0
      fi
    done
    warn "could not find a way to reload sshd; the config applies when sshd next starts"
  fi
}

# apply_sshd_dropin PATH CONTENT: write the drop-in, validate with `sshd -t`, and reload sshd
# only if the file changed and validation passed. A rejected file is rolled back, sshd untouched.
apply_sshd_dropin() {
  local path=$1 content=$2 had_old=0 out
  require_dropin_dir
  locate_sshd
  ensure_workdir
  if as_root test -f "$path"; then
    as_root cp -p -- "$path" "$WORKDIR/sshd-dropin.bak"
    had_old=1
  fi
  install_file "$path" 0644 "$content"
  ensure_privsep_dir
  if ! out=$(as_root "$SSHD" -t 2>&1); then
    printf '%s\n' "$out" >&2
    if ((had_old)); then
      as_root cp -p -- "$WORKDIR/sshd-dropin.bak" "$path"
    else
      as_root rm -f -- "$path"
    fi
    die "sshd -t rejected the configuration; $path rolled back and sshd NOT reloaded"
  fi
  say "sshd -t: configuration is valid"
  if ((CHANGED)); then
    reload_sshd
  else
    say "sshd configuration unchanged; no reload needed"
  fi
}

expect_setting() {
  local effective=$1 key=$2 value=$3
  if [[ $'\n'$effective$'\n' != *$'\n'"$key $value"$'\n'* ]]; then
    die "sshd -T does not report '$key $value' (another config file may override it)"
  fi
}

# ---------------------------------------------------------------------------- blocks

wait_cloud_init() {
  local rc=0 timeout_secs=${CLOUD_INIT_TIMEOUT_SECS:-600}
  if ! command -v cloud-init >/dev/null 2>&1; then
    say "cloud-init is not installed; nothing to wait for"
    return 0
  fi
  say "waiting for cloud-init to finish"
  if command -v timeout >/dev/null 2>&1; then
    timeout "$timeout_secs" cloud-init status --wait >/dev/null 2>&1 || rc=$?
  else
    cloud-init status --wait >/dev/null 2>&1 || rc=$?
  fi
  case $rc in
    0) say "cloud-init finished" ;;
    2) warn "cloud-init finished degraded (recoverable errors); continuing" ;;
    124) die "cloud-init did not finish within ${timeout_secs}s" ;;
    *) die "cloud-init reported an error (cloud-init status exit $rc)" ;;
  esac
}

baseline_packages() {
  require_pkg_mgr
  local -a core extras
  case $PKG in
    apt)
      core=(curl ca-certificates gnupg git jq unzip tar openssh-client)
      extras=(vim tmux htop net-tools ufw)
      ;;
    dnf | yum)
      core=(curl ca-certificates gnupg2 git jq unzip tar openssh-clients)
      extras=(vim-enhanced tmux htop net-tools firewalld)
      ;;
    zypper)
      core=(curl ca-certificates gpg2 git jq unzip tar openssh-clients)
      extras=(vim tmux htop net-tools)
      ;;
    apk)
      core=(curl ca-certificates gnupg git jq unzip tar openssh-client)
      extras=(vim tmux htop net-tools)
      ;;
  esac
  pkg_install "${core[@]}"
  # Convenience tools (htop needs EPEL on RHEL, for instance): try together, then one by one.
  pkg_try "${extras[@]}"
  if ((!TRY_OK)); then
    local extra
    for extra in "${extras[@]}"; do
      pkg_try "$extra"
    done
  fi
}

ssh_user() {
  if [[ -n ${SSH_USER:-} ]]; then
    printf '%s\n' "$SSH_USER"
  elif ((EUID == 0)) && [[ -n ${SUDO_USER:-} ]]; then
    printf '%s\n' "$SUDO_USER"
  else
    id -un
  fi
}

add_user_to_docker_group() {
  local user groups
  user=$(ssh_user)
  if [[ $user == root ]]; then
    say "ssh user is root; no docker group membership needed"
    return 0
  fi
  if ! getent group docker >/dev/null 2>&1; then
    if command -v groupadd >/dev/null 2>&1; then
      as_root groupadd --system docker
    else
      as_root addgroup -S docker
    fi
  fi
  groups=" $(id -nG "$user") "
  if [[ $groups == *" docker "* ]]; then
    say "$user is already in group docker"
  elif command -v usermod >/dev/null 2>&1; then
    as_root usermod -aG docker "$user"
    say "added $user to group docker (takes effect at the next login)"
  else
    as_root addgroup "$user" docker
    say "added $user to group docker (takes effect at the next login)"
  fi
}

install_compose_static() {
  local arch url expected actual
  arch=$(uname -m)
  case $arch in
    x86_64 | amd64) arch=x86_64 ;;
    aarch64 | arm64) arch=aarch64 ;;
    armv7l) arch=armv7 ;;
    armv6l) arch=armv6 ;;
    ppc64le | s390x | riscv64) ;;
    *) die "no docker compose build for architecture $arch" ;;
  esac
  need_cmd curl curl ca-certificates
  need_cmd sha256sum coreutils
  ensure_workdir
  url="https://github.com/docker/compose/releases/download/${COMPOSE_VERSION}/docker-compose-linux-${arch}"
  say "downloading docker compose ${COMPOSE_VERSION} ($arch)"
  curl -fsSL --retry 3 -o "$WORKDIR/docker-compose" "$url"
  curl -fsSL --retry 3 -o "$WORKDIR/docker-compose.sha256" "$url.sha256"
  read -r expected _ <"$WORKDIR/docker-compose.sha256"
  actual=$(sha256sum "$WORKDIR/docker-compose")
  actual=${actual%% *}
  if [[ -z $expected || $expected != "$actual" ]]; then
    die "docker compose download failed its sha256 check"
  fi
  as_root install -d -m 0755 "$COMPOSE_PLUGIN_DIR"
  as_root install -m 0755 -o root -g root "$WORKDIR/docker-compose" "$COMPOSE_PLUGIN_DIR/docker-compose"
  say "installed $COMPOSE_PLUGIN_DIR/docker-compose"
}

ensure_compose_v2() {
  if as_root docker compose version >/dev/null 2>&1; then
    say "docker compose v2 is available"
    return 0
  fi
  if [[ $PKG == apt ]]; then
    pkg_try docker-compose-plugin
  fi
  if ! as_root docker compose version >/dev/null 2>&1; then
    install_compose_static
  fi
  if ! as_root docker compose version >/dev/null 2>&1; then
    die "docker compose v2 is still not available"
  fi
  say "docker compose v2 is available"
}

install_docker() {
  require_pkg_mgr
  if command -v docker >/dev/null 2>&1; then
    say "docker is already installed"
  else
    case $PKG in
      apt | dnf | yum)
        pkg_prepare # persists the apt lock timeout the convenience script will honour
        need_cmd curl curl ca-certificates
        ensure_workdir
        say "installing docker with the official convenience script (get.docker.com)"
        curl -fsSL --retry 3 -o "$WORKDIR/get-docker.sh" https://get.docker.com
        as_root sh "$WORKDIR/get-docker.sh"
        ;;
      zypper) pkg_install docker ;;
      apk) pkg_install docker docker-cli-compose ;;
    esac
  fi
  svc_enable_now docker
  add_user_to_docker_group
  ensure_compose_v2
}

harden_ssh() {
  local conf effective user
  require_dropin_dir
  locate_sshd
  say "sshd: $SSHD"
  conf="# Managed by Autoglue (bastion bootstrap); local edits are overwritten.
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitEmptyPasswords no
PubkeyAuthentication yes
UsePAM yes
ClientAliveInterval 300
ClientAliveCountMax 2
LoginGraceTime 20
MaxAuthTries 3
MaxSessions 10
X11Forwarding no"
  if [[ $BANNER == 1 ]]; then
    conf+=$'\n'"Banner $BANNER_FILE"
  fi
  apply_sshd_dropin "$SSHD_DROPIN" "$conf"
  if [[ $BANNER == 1 ]] && as_root test -f "$SSHD_BANNER_DROPIN"; then
    # The Banner line now lives in 10-bastion.conf; drop the banner-only file of an earlier run.
    as_root rm -f -- "$SSHD_BANNER_DROPIN"
    say "removed $SSHD_BANNER_DROPIN (Banner is in $SSHD_DROPIN)"
  fi

  effective=$(sshd_effective_config)
  expect_setting "$effective" passwordauthentication no
  expect_setting "$effective" permitemptypasswords no
  expect_setting "$effective" pubkeyauthentication yes
  if [[ $'\n'$effective == *$'\n'"kbdinteractiveauthentication "* ]]; then
    expect_setting "$effective" kbdinteractiveauthentication no
  else
    expect_setting "$effective" challengeresponseauthentication no
  fi
  say "sshd -T confirms: no passwords, no empty passwords, no keyboard-interactive"

  user=$(ssh_user)
  if [[ $user == root ]]; then
    say "ssh user is root; leaving the root password as it is"
  else
    as_root passwd -l root >/dev/null
    say "root password locked"
  fi
}

firewall_ufw() {
  local status port
  need_cmd ufw ufw
  status=$(as_root ufw status 2>&1 || true)
  if [[ $status != *"Status: active"* ]]; then
    # First run: start from ufw's clean defaults. Later runs keep the operator's extra rules.
    as_root ufw --force reset >/dev/null
  fi
  as_root ufw default deny incoming >/dev/null
  as_root ufw default allow outgoing >/dev/null
  for port in "${SSH_PORTS[@]}"; do
    # `limit` allows the port with ufw's connection rate limit.
    as_root ufw limit "$port/tcp" >/dev/null
    say "ufw: ssh allowed (rate-limited) on $port/tcp"
  done
  as_root ufw --force enable >/dev/null
  svc_enable_now ufw
  status=$(as_root ufw status)
  for port in "${SSH_PORTS[@]}"; do
    if [[ $status != *"$port/tcp"*LIMIT* ]]; then
      die "ufw is active but its ssh rule for $port/tcp is missing"
    fi
  done
  say "ufw active: deny incoming, allow outgoing, ssh allowed"
}

firewall_firewalld() {
  local port
  need_cmd firewall-cmd firewalld
  if ! as_root firewall-cmd --state >/dev/null 2>&1; then
    # Not running yet: allow ssh in the permanent config before it starts.
    as_root firewall-offline-cmd --add-service=ssh >/dev/null
    for port in "${SSH_PORTS[@]}"; do
      if [[ $port != 22 ]]; then
        as_root firewall-offline-cmd --add-port="$port/tcp" >/dev/null
      fi
    done
    svc_enable_now firewalld
  fi
  as_root firewall-cmd --permanent --add-service=ssh >/dev/null
  as_root firewall-cmd --add-service=ssh >/dev/null
  for port in "${SSH_PORTS[@]}"; do
    if [[ $port != 22 ]]; then
      as_root firewall-cmd --permanent --add-port="$port/tcp" >/dev/null
      as_root firewall-cmd --add-port="$port/tcp" >/dev/null
    fi
  done
  svc_enable_now firewalld
  say "firewalld active with ssh allowed on: ${SSH_PORTS[*]}"
}

configure_firewall() {
  require_pkg_mgr
  detect_ssh_ports
  case $PKG in
    apt | apk) firewall_ufw ;;
    dnf | yum | zypper) firewall_firewalld ;;
  esac
}

# set_ini_value FILE KEY VALUE: make `KEY = VALUE` active in an ini-style FILE that already
# mentions KEY (possibly commented out).
set_ini_value() {
  local file=$1 key=$2 value=$3 line found=0
  while IFS= read -r line; do
    line=${line//[[:space:]]/}
    if [[ $line == "${key}=${value}" ]]; then
      say "$file: $key = $value already set"
      return 0
    fi
    if [[ $line == "${key}="* || $line == "#${key}="* ]]; then
      found=1
    fi
  done < <(as_root cat -- "$file")
  if ((!found)); then
    die "$file has no '$key' setting to change"
  fi
  as_root sed -i -E "s/^[#[:space:]]*${key}[[:space:]]*=.*/${key} = ${value}/" "$file"
  say "$file: set $key = $value"
}

auto_updates_dnf() {
  local timer
  pkg_install dnf-automatic
  if ! have_systemd; then
    die "systemd is not running; cannot enable the dnf-automatic timer"
  fi
  if unit_exists dnf-automatic-install.timer; then
    timer=dnf-automatic-install.timer
  else
    if unit_exists dnf5-automatic.timer; then
      timer=dnf5-automatic.timer
    elif unit_exists dnf-automatic.timer; then
      timer=dnf-automatic.timer
    else
      die "no dnf-automatic timer unit found after installing dnf-automatic"
    fi
    if as_root test -f /etc/dnf/automatic.conf; then
      set_ini_value /etc/dnf/automatic.conf apply_updates yes
    else
      install_file /etc/dnf/automatic.conf 0644 $'[commands]\napply_updates = yes'
    fi
  fi
  svc_enable_now "$timer"
  say "$timer enabled"
}

configure_auto_updates() {
  require_pkg_mgr
  case $PKG in
    apt)
      pkg_install unattended-upgrades
      install_file /etc/apt/apt.conf.d/20auto-upgrades 0644 \
        $'APT::Periodic::Update-Package-Lists "1";\nAPT::Periodic::Unattended-Upgrade "1";'
      if have_systemd && unit_exists unattended-upgrades.service; then
        svc_enable_now unattended-upgrades.service
      fi
      say "unattended-upgrades enabled"
      ;;
    dnf) auto_updates_dnf ;;
    yum)
      pkg_install yum-cron
      set_ini_value /etc/yum/yum-cron.conf apply_updates yes
      svc_enable_now yum-cron
      say "yum-cron enabled"
      ;;
    *) warn "automatic updates are not configured on $PKG systems; skipped" ;;
  esac
}

enable_chrony() {
  need_cmd chronyd chrony
  if have_systemd && unit_exists chronyd.service; then
    svc_enable_now chronyd.service
  elif have_systemd; then
    svc_enable_now chrony.service
  else
    svc_enable_now chronyd
  fi
  say "chrony enabled"
}

configure_time_sync() {
  require_pkg_mgr
  if command -v chronyd >/dev/null 2>&1; then
    say "chrony is already installed; keeping it"
    enable_chrony
  elif have_systemd && unit_exists systemd-timesyncd.service; then
    svc_enable_now systemd-timesyncd.service
    say "systemd-timesyncd enabled"
  elif [[ $PKG == apt ]] && have_systemd; then
    pkg_try systemd-timesyncd
    if ((TRY_OK)); then
      svc_enable_now systemd-timesyncd.service
      say "systemd-timesyncd enabled"
    else
      enable_chrony
    fi
  else
    enable_chrony
  fi
  if have_systemd && command -v timedatectl >/dev/null 2>&1; then
    if as_root timedatectl set-ntp true; then
      say "timedatectl: NTP on"
    else
      warn "timedatectl set-ntp true failed; the time service is enabled regardless"
    fi
  fi
}

configure_fail2ban() {
  local backend="" jail ports attempt
  require_pkg_mgr
  detect_ssh_ports
  if [[ ! -e /var/log/auth.log && ! -e /var/log/secure ]] && have_systemd; then
    backend=systemd # no syslog file to watch: read sshd's journal instead
  fi
  if ! command -v fail2ban-client >/dev/null 2>&1; then
    pkg_try fail2ban
    if ((!TRY_OK)) && [[ $PKG == dnf || $PKG == yum ]]; then
      say "fail2ban comes from EPEL here; enabling it"
      pkg_install epel-release
      pkg_install fail2ban
    elif ((!TRY_OK)); then
      die "could not install fail2ban"
    fi
  fi
  if [[ $backend == systemd ]]; then
    case $PKG in
      apt | dnf | yum) pkg_try python3-systemd ;;
    esac
  fi
  ports=${SSH_PORTS[*]}
  jail="# Managed by Autoglue (bastion bootstrap).
[sshd]
enabled = true
port = ${ports// /,}
maxretry = 4
findtime = 10m
bantime = 1h"
  if [[ -n $backend ]]; then
    jail+=$'\n'"backend = $backend"
  fi
  as_root install -d -m 0755 /etc/fail2ban/jail.d
  install_file "$FAIL2BAN_JAIL" 0644 "$jail"
  if ! as_root fail2ban-client -t >/dev/null; then
    die "fail2ban-client -t rejected the configuration"
  fi
  svc_enable_now fail2ban
  if ((CHANGED)); then
    svc_restart fail2ban
  fi
  for attempt in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15; do
    if as_root fail2ban-client status sshd >/dev/null 2>&1; then
      say "fail2ban sshd jail active: maxretry 4, findtime 10m, bantime 1h"
      return 0
    fi
    say "waiting for the fail2ban sshd jail ($attempt)"
    sleep 2
  done
  die "the fail2ban sshd jail did not come up"
}

configure_banner() {
  local effective
  install_file "$BANNER_FILE" 0644 "$BANNER_TEXT"
  if [[ $SSH_HARDEN == 1 ]]; then
    say "the Banner line is part of $SSHD_DROPIN"
  else
    apply_sshd_dropin "$SSHD_BANNER_DROPIN" "# Managed by Autoglue (bastion bootstrap).
Banner $BANNER_FILE"
  fi
  locate_sshd
  effective=$(sshd_effective_config)
  expect_setting "$effective" banner "$BANNER_FILE"
  say "sshd shows $BANNER_FILE before login"
}

# ---------------------------------------------------------------------------- main

preflight() {
  local name value any=0
  for name in "${BLOCK_TOGGLES[@]}" WAIT_CLOUD_INIT; do
    value=${!name:-1}
    if [[ $value != 0 && $value != 1 ]]; then
      die "$name must be 0 or 1, got '$value'"
    fi
    printf -v "$name" '%s' "$value"
  done
  APT_LOCK_WAIT_SECS=${APT_LOCK_WAIT_SECS:-300}
  if [[ ! $APT_LOCK_WAIT_SECS =~ ^[0-9]+$ ]]; then
    die "APT_LOCK_WAIT_SECS must be a whole number of seconds, got '$APT_LOCK_WAIT_SECS'"
  fi
  COMPOSE_VERSION=${COMPOSE_VERSION:-v2.29.7}
  if [[ ! $COMPOSE_VERSION =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
    die "COMPOSE_VERSION must look like v2.29.7, got '$COMPOSE_VERSION'"
  fi
  if [[ ! ${CLOUD_INIT_TIMEOUT_SECS:-600} =~ ^[0-9]+$ ]]; then
    die "CLOUD_INIT_TIMEOUT_SECS must be a whole number of seconds"
  fi
  say "BASELINE_PKGS=$BASELINE_PKGS INSTALL_DOCKER=$INSTALL_DOCKER SSH_HARDEN=$SSH_HARDEN FIREWALL=$FIREWALL"
  say "AUTO_UPDATES=$AUTO_UPDATES TIME_SYNC=$TIME_SYNC FAIL2BAN=$FAIL2BAN BANNER=$BANNER WAIT_CLOUD_INIT=$WAIT_CLOUD_INIT"
  for name in "${BLOCK_TOGGLES[@]}"; do
    if [[ ${!name} == 1 ]]; then
      any=1
    fi
  done
  if ((any)); then
    ensure_root
  else
    say "every block is switched off; nothing on this host will be changed"
  fi
}

run_block() {
  local toggle=$1 name=$2 fn=$3
  STEP=$name
  if [[ ${!toggle} == 1 ]]; then
    printf '==> step: %s\n' "$name"
    "$fn"
  else
    printf '==> step: %s (skipped: %s=0)\n' "$name" "$toggle"
  fi
}

main() {
  # The script itself arrives on stdin: keep every command from reading (and eating) it.
  exec </dev/null
  trap on_exit EXIT
  # Non-root login shells often lack the sbin directories (sshd, ufw, usermod, fuser).
  local dir
  for dir in /usr/local/sbin /usr/sbin /sbin; do
    if [[ ":$PATH:" != *":$dir:"* ]]; then
      PATH="$PATH:$dir"
    fi
  done
  export PATH

  STEP="preflight"
  printf '==> step: %s\n' "$STEP"
  preflight

  run_block WAIT_CLOUD_INIT "wait for cloud-init" wait_cloud_init
  run_block BASELINE_PKGS "baseline packages" baseline_packages
  run_block INSTALL_DOCKER "docker" install_docker
  run_block SSH_HARDEN "ssh hardening" harden_ssh
  run_block FIREWALL "firewall" configure_firewall
  run_block AUTO_UPDATES "automatic updates" configure_auto_updates
  run_block TIME_SYNC "time sync" configure_time_sync
  run_block FAIL2BAN "fail2ban" configure_fail2ban
  run_block BANNER "banner" configure_banner

  STEP="done"
  printf '==> bastion ready\n'
}

# Called on the last line, so bash has read the whole script before anything runs.
main "$@"
