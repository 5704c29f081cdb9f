#!/usr/bin/env bash
# test-deps.sh makes sure this machine has what `make test` needs, installing
# what is missing (Debian/Ubuntu, as root). Idempotent; silent but for one
# summary line unless something goes wrong.
#
#  - PostgreSQL answering at 127.0.0.1:5432 with trust auth for local TCP
#    (unless SETTLE_TEST_DATABASE_URL points elsewhere): installs the server,
#    starts (or creates) a cluster on port 5432, trusts 127.0.0.1 and ::1.
#  - OpenSSH's sshd, sftp-server and sftp client (an SFTP interop peer for
#    tests, which start their own sshd; none is started here).
#  - The openssl command line (an Infinia envelope peer for tests).
#  - staticcheck, pinned, in $(go env GOPATH)/bin.
set -euo pipefail

readonly STATICCHECK_VERSION=0.8.2
readonly PG_PORT=5432

did=()   # what was done, for the summary
need=()  # what is missing, when we may not install it
apt_updated=
log=$(mktemp)
trap 'rm -f "$log"' EXIT

is_root() { [[ $(id -u) == 0 ]]; }

# quietly runs a command, showing its output only when it fails.
quietly() {
	if ! "$@" >"$log" 2>&1; then
		echo "test-deps: failed: $*" >&2
		cat "$log" >&2
		exit 1
	fi
}

# apt_install installs Debian packages without starting their services:
# postgresql is started below on our terms, sshd not at all.
apt_install() {
	if [[ -z $apt_updated ]]; then
		quietly apt-get update -q
		apt_updated=1
	fi
	local policy=/usr/sbin/policy-rc.d made_policy=
	if [[ ! -e $policy ]]; then
		printf '#!/bin/sh\nexit 101\n' >"$policy"
		chmod 755 "$policy"
		made_policy=1
	fi
	local rc=0
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >"$log" 2>&1 || rc=$?
	if [[ -n $made_policy ]]; then rm -f "$policy"; fi
	if ((rc != 0)); then
		echo "test-deps: failed: apt-get install $*" >&2
		cat "$log" >&2
		exit 1
	fi
	did+=("installed $*")
}

# ---- PostgreSQL ----

pg_up() {
	if command -v pg_isready >/dev/null; then
		pg_isready -q -h 127.0.0.1 -p "$PG_PORT" -t 2
	else
		timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$PG_PORT" 2>/dev/null
	fi
}

pg_bin_version() { # highest installed server version, or nothing
	local d
	for d in /usr/lib/postgresql/*/bin/initdb; do
		if [[ -x $d ]]; then basename "$(dirname "$(dirname "$d")")"; fi
	done | sort -V | tail -n 1
}

# pg_cluster_on_port prints "version name" of a cluster set up on PG_PORT.
pg_cluster_on_port() {
	command -v pg_lsclusters >/dev/null || return 0
	pg_lsclusters -h 2>/dev/null | awk -v p="$PG_PORT" '$3 == p { print $1, $2; exit }'
}

# pg_trust_local puts trust lines for local TCP first in the cluster's
# pg_hba.conf (the first matching line wins), once; sets hba_changed.
hba_changed=
pg_trust_local() {
	local hba=/etc/postgresql/$1/$2/pg_hba.conf marker='# settle test-deps: trust local TCP'
	if [[ ! -f $hba ]] || grep -qF "$marker" "$hba"; then
		return
	fi
	{
		echo "$marker (throwaway test databases; see scripts/test-deps.sh)"
		echo "host all all 127.0.0.1/32 trust"
		echo "host all all ::1/128 trust"
		cat "$hba"
	} >"$hba.new"
	chown --reference="$hba" "$hba.new"
	chmod --reference="$hba" "$hba.new"
	mv "$hba.new" "$hba"
	did+=("trusted local TCP in $hba")
	hba_changed=1
}

ensure_postgres() {
	if [[ -n ${SETTLE_TEST_DATABASE_URL:-} ]] || pg_up; then
		return
	fi
	if ! is_root; then
		# Tests start a throwaway cluster themselves from installed binaries.
		if [[ -n $(pg_bin_version) ]] || command -v initdb >/dev/null; then
			did+=("no server at 127.0.0.1:$PG_PORT: tests will start their own")
		else
			need+=("PostgreSQL: run this script as root, or apt-get install postgresql, or set SETTLE_TEST_DATABASE_URL")
		fi
		return
	fi
	if [[ -z $(pg_bin_version) ]] || ! command -v pg_ctlcluster >/dev/null; then
		apt_install postgresql postgresql-contrib
	fi
	local ver name cluster
	cluster=$(pg_cluster_on_port)
	if [[ -n $cluster ]]; then
		read -r ver name <<<"$cluster"
	else
		ver=$(pg_bin_version)
		name=main
		if [[ -d /etc/postgresql/$ver/main ]]; then
			name=settle # main exists on another port: leave it alone
		fi
		quietly pg_createcluster "$ver" "$name" -p "$PG_PORT"
		did+=("created cluster $ver/$name")
	fi
	local running=
	if pg_ctlcluster "$ver" "$name" status >/dev/null 2>&1; then running=1; fi
	pg_trust_local "$ver" "$name"
	if [[ -n $hba_changed && -n $running ]]; then
		quietly pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" reload
	fi
	if [[ -z $running ]]; then
		quietly pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" start
		did+=("started cluster $ver/$name")
	fi
	local i
	for ((i = 0; i < 60; i++)); do
		pg_up && return
		sleep 0.5
	done
	echo "test-deps: PostgreSQL cluster $ver/$name does not answer at 127.0.0.1:$PG_PORT" >&2
	tail -n 20 "/var/log/postgresql/postgresql-$ver-$name.log" >&2 2>/dev/null || true
	exit 1
}

# ---- OpenSSH ----

ensure_openssh() {
	if [[ -x /usr/sbin/sshd && -x /usr/lib/openssh/sftp-server ]] && command -v sftp >/dev/null; then
		return
	fi
	if ! is_root; then
		need+=("OpenSSH (apt-get install openssh-server openssh-client)")
		return
	fi
	apt_install openssh-server openssh-client
}

# ---- staticcheck ----

ensure_staticcheck() {
	local bin
	bin=$(go env GOPATH)/bin
	if [[ -x $bin/staticcheck ]] && "$bin/staticcheck" -version 2>/dev/null | grep -qF "($STATICCHECK_VERSION)"; then
		return
	fi
	# GOBIN set: go install would put it elsewhere; make reads GOPATH/bin.
	quietly env GOBIN="$bin" go install "honnef.co/go/tools/cmd/staticcheck@v$STATICCHECK_VERSION"
	did+=("installed staticcheck v$STATICCHECK_VERSION")
}

ensure_openssl() {
	if command -v openssl >/dev/null; then
		return
	fi
	if ! is_root; then
		need+=("openssl (apt-get install openssl)")
		return
	fi
	apt_install openssl
}

# pg_dump and pg_restore: the tests that restore settle's ledger from a
# backup, as an operator would (cmd/settle/restore_test.go). A server that
# answers already, or one the tests start, may come without them.
ensure_pg_client() {
	if command -v pg_dump >/dev/null && command -v pg_restore >/dev/null; then
		return
	fi
	if ! is_root; then
		need+=("PostgreSQL's client, pg_dump and pg_restore (apt-get install postgresql-client)")
		return
	fi
	apt_install postgresql-client
}

ensure_postgres
ensure_pg_client
ensure_openssh
ensure_openssl
ensure_staticcheck

if ((${#need[@]} > 0)); then
	echo "test-deps: missing, and not root to install it:" >&2
	printf '  - %s\n' "${need[@]}" >&2
	exit 1
fi
if ((${#did[@]} == 0)); then
	echo "test-deps: ok, nothing to do"
else
	summary=$(printf '; %s' "${did[@]}")
	echo "test-deps: ${summary:2}"
fi
