#!/usr/bin/env bash
# The one command that runs Greffier's whole test suite, on a fresh Debian
# machine (as root) or on a developer's box. It installs what is missing
# (apt packages, versitygw, staticcheck), starts PostgreSQL if it is not
# accepting connections, then checks formatting, vets, lints and tests.
# Idempotent, and quick when everything is already in place.
#
# Environment:
#   GREFFIER_TEST_POSTGRES  URL of a PostgreSQL server to use instead of the
#                           local one (then this script leaves PostgreSQL alone)
#   GREFFIER_VERSITYGW      path of the versitygw binary to use
#   GREFFIER_LIVEKIT_SERVER path of the livekit-server binary to use (the
#                           LiveKit tests then require it)
#   GREFFIER_TEST_PACKAGES  packages to vet, lint and test (default ./...)
#   GREFFIER_AXE_JS         axe-core's axe.min.js, for the browser tests'
#                           accessibility checks (default: installed from
#                           npm into .cache/npm)
# Arguments are passed to `go test` (e.g. -run TestX), after the defaults.
set -euo pipefail

VERSITYGW_VERSION=v1.8.0
LIVEKIT_SERVER_VERSION=v1.13.11
STATICCHECK_VERSION=v0.8.2 # staticcheck 2026.2.2
AXE_VERSION=4.14.1          # axe-core, run in Chromium by the browser tests
APT_PACKAGES=(ffmpeg opus-tools mkvtoolnix sox gcc libc6-dev chromium curl jq iproute2 nftables espeak-ng) # gcc: go test -race needs cgo; chromium: browser tests; curl, jq: the docs' walk-throughs; iproute2, nftables: the UDP-blocked browser test; espeak-ng: speech fixtures (segment coverage)
DEFAULT_PG_URL="postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '\n==> %s\n' "$*" >&2; }
die() { printf 'test.sh: %s\n' "$*" >&2; exit 1; }
as_root() {
	if [[ $(id -u) -eq 0 ]]; then "$@"
	elif command -v sudo >/dev/null; then sudo "$@"
	else die "need root to run: $* (run this script as root, or install sudo)"
	fi
}

command -v go >/dev/null || die "go not found in PATH: install Go $(sed -n 's/^go //p' go.mod) from https://go.dev/dl/"

# --- system packages -------------------------------------------------------
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
missing=()
for p in "${APT_PACKAGES[@]}"; do installed "$p" || missing+=("$p"); done
if [[ -z ${GREFFIER_TEST_POSTGRES:-} ]] && ! compgen -G '/etc/postgresql/*/main' >/dev/null; then
	missing+=(postgresql)
fi
if ((${#missing[@]})); then
	step "installing apt packages: ${missing[*]}"
	command -v apt-get >/dev/null || die "apt-get not found: install ${missing[*]} yourself"
	as_root apt-get update -qq
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# --- Go tools --------------------------------------------------------------
GOBIN_DIR="$(go env GOBIN)"
[[ -n $GOBIN_DIR ]] || GOBIN_DIR="$(go env GOPATH | cut -d: -f1)/bin"
export PATH="$GOBIN_DIR:$PATH"

if [[ -n ${GREFFIER_VERSITYGW:-} ]]; then
	[[ -x $GREFFIER_VERSITYGW ]] || die "GREFFIER_VERSITYGW=$GREFFIER_VERSITYGW is not an executable file"
elif ! command -v versitygw >/dev/null; then
	step "installing versitygw $VERSITYGW_VERSION into $GOBIN_DIR (takes a few minutes)"
	go install "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION"
fi

# livekit-server, for the LiveKit tests (a real single-node server on
# loopback). `go install` refuses it: its go.mod replaces pion/webrtc, ice
# and dtls with LiveKit's forks, which the module proxy does not serve.
# So the module is built from a copy without the replace lines, against
# upstream pion. The forks add one call upstream pion lacks,
# SettingEngine.EnableSped (part of LiveKit's "warp" connection speed-up,
# which only LiveKit's forked clients ask for); the smallest honest fix is
# to drop that call, so warp is off and everything else is LiveKit's code.
install_livekit_server() {
	local dir src
	dir="$(go mod download -json "github.com/livekit/livekit-server@$LIVEKIT_SERVER_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
	[[ -d $dir ]] || die "could not download github.com/livekit/livekit-server@$LIVEKIT_SERVER_VERSION"
	src="$(mktemp -d)"
	cp -r "$dir/." "$src"
	chmod -R u+w "$src"
	sed -i '/^replace /d' "$src/go.mod"
	sed -i '/se\.EnableSped(true)/d' "$src/pkg/rtc/transport.go"
	(cd "$src" && go mod tidy && CGO_ENABLED=0 go build -o "$GOBIN_DIR/livekit-server" ./cmd/server)
	rm -rf "$src"
}
if [[ -n ${GREFFIER_LIVEKIT_SERVER:-} ]]; then
	[[ -x $GREFFIER_LIVEKIT_SERVER ]] || die "GREFFIER_LIVEKIT_SERVER=$GREFFIER_LIVEKIT_SERVER is not an executable file"
elif ! livekit-server --version 2>/dev/null | grep -qx "livekit-server version ${LIVEKIT_SERVER_VERSION#v}"; then
	step "building livekit-server $LIVEKIT_SERVER_VERSION into $GOBIN_DIR (takes many minutes)"
	install_livekit_server
fi
# The LiveKit tests skip without the server only outside this script.
export GREFFIER_REQUIRE_LIVEKIT=1

if ! command -v staticcheck >/dev/null; then
	step "installing staticcheck $STATICCHECK_VERSION into $GOBIN_DIR"
	go install "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION"
fi

# --- npm packages for the browser tests ------------------------------------
if [[ -z ${GREFFIER_AXE_JS:-} ]]; then
	axe_dir=.cache/npm
	axe_pkg="$axe_dir/node_modules/axe-core/package.json"
	if ! grep -q "\"version\": \"$AXE_VERSION\"" "$axe_pkg" 2>/dev/null; then
		if ! command -v npm >/dev/null; then
			step "installing npm"
			as_root apt-get update -qq
			as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends npm
		fi
		step "installing axe-core $AXE_VERSION from npm into $axe_dir"
		npm install --no-save --no-audit --no-fund --silent --prefix "$axe_dir" "axe-core@$AXE_VERSION"
	fi
	export GREFFIER_AXE_JS="$PWD/$axe_dir/node_modules/axe-core/axe.min.js"
fi

# --- PostgreSQL ------------------------------------------------------------
if [[ -n ${GREFFIER_TEST_POSTGRES:-} ]]; then
	step "using PostgreSQL at GREFFIER_TEST_POSTGRES (not managed here)"
else
	version="$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n1 || true)"
	[[ -n $version ]] || die "no PostgreSQL cluster in /etc/postgresql: create one with pg_createcluster"
	if ! pg_isready -q -h 127.0.0.1 -p 5432; then
		step "starting PostgreSQL $version"
		as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
		for _ in $(seq 1 60); do
			pg_isready -q -h 127.0.0.1 -p 5432 && break
			sleep 0.5
		done
		pg_isready -h 127.0.0.1 -p 5432 ||
			die "PostgreSQL $version is not accepting connections on 127.0.0.1:5432; see /var/log/postgresql/"
	fi
	admin_url="postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	if ! psql "$admin_url" -tAc 'SELECT 1' >/dev/null 2>&1; then
		# A fresh Debian cluster asks for a password on TCP; the tests use
		# the passwordless default URL, so trust the postgres user on
		# loopback only. Done once: the line is then in pg_hba.conf.
		hba="/etc/postgresql/$version/main/pg_hba.conf"
		step "allowing passwordless loopback access for user postgres in $hba"
		as_root sed -i '1i host all postgres 127.0.0.1/32 trust # added by greffier scripts/test.sh' "$hba"
		as_root pg_ctlcluster --skip-systemctl-redirect "$version" main reload
		psql "$admin_url" -tAc 'SELECT 1' >/dev/null ||
			die "cannot connect to $admin_url even after editing $hba"
	fi
	# The default URL names database "test"; testenv only needs the server,
	# but other tools may connect to it directly.
	if [[ -z $(psql "$admin_url" -tAc "SELECT 1 FROM pg_database WHERE datname = 'test'") ]]; then
		psql "$admin_url" -qc 'CREATE DATABASE test'
	fi
	export GREFFIER_TEST_POSTGRES="$DEFAULT_PG_URL"
fi

# --- checks ----------------------------------------------------------------
read -r -a pkgs <<<"${GREFFIER_TEST_PACKAGES:-./...}"

step "gofmt"
mapfile -t dirs < <(go list -e -f '{{.Dir}}' "${pkgs[@]}")
unformatted="$(gofmt -l "${dirs[@]}" | sort -u)"
[[ -z $unformatted ]] || die "gofmt would change these files (run gofmt -w):"$'\n'"$unformatted"

step "go vet"
go vet "${pkgs[@]}"

step "staticcheck"
staticcheck "${pkgs[@]}"

step "go test -race"
go test -race -count=1 -timeout 20m "${pkgs[@]}" "$@"

step "all checks passed"
