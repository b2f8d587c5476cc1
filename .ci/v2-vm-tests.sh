#!/usr/bin/env bash
# Runs the root tests again on a pure cgroup v2 kernel, in the throw-away VM of
# ../shared/vm/run-in-v2-vm.sh: the test binaries are built here (cargo test --no-run)
# and run inside the VM on this machine's filesystem. The same tests as on the host, no
# v2-only skips. A second pass runs the cgroup-facing tests from inside a systemd-style
# delegated group (--cgroup boxd.slice/boxd.service).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

vm=../shared/vm/run-in-v2-vm.sh
[ -x "$vm" ] || { echo "v2-vm-tests: $vm is missing" >&2; exit 1; }

# Test executables by target name (lib unit tests of the daemon, the shim's integration
# tests, and the integration suite).
mapfile -t lines < <(cargo test --workspace --no-run --message-format=json 2>/dev/null |
    python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        print(m["target"]["name"], m["target"]["kind"][0], m["executable"])
')
exe() { # name kind
    for l in "${lines[@]}"; do
        read -r n k e <<<"$l"
        if [ "$n" = "$1" ] && [ "$k" = "$2" ]; then echo "$e"; return; fi
    done
    echo "v2-vm-tests: no test executable for $1 ($2)" >&2
    exit 1
}
daemon_lib=$(exe boxd lib)
shim_it=$(exe shim test)
suite=$(exe it test)

run_vm() { # label, vm options..., --, command...
    local label=$1; shift
    echo "---- v2 VM: $label"
    local t0=$SECONDS
    "$vm" --timeout 2400 --mem 4G "$@"
    echo "---- v2 VM: $label passed in $((SECONDS - t0)) s"
}

export BOXD_TEST_REQUIRE_ROOT=1
run_vm "daemon unit + cgroup root tests" -- "$daemon_lib" --test-threads 2
run_vm "shim integration tests" -- "$shim_it" --test-threads 2
# Networking (network:: and the other tests that attach containers to networks) is
# left to the host run: it touches no cgroup, and its hundreds of CNI plugin runs take
# many minutes under the VM's emulation.
# Also left to the host: the Docker CLI's events test (its --since/--until window is
# too tight for the VM's emulated speed), the user-namespaced volume and docker cp
# tests (the VM's filesystem cannot be idmapped; tests/it/userns.rs checks that
# refusal), docker-compose and testcontainers (networks), and the Docker-face tests
# that translate requests without touching a cgroup (terminal, images, archive wire
# format, refusals, the second socket, docker-py), the registry tests of images_more
# (downloads, auth, verification: no kernel in them) and the README's clone test. The disk-limited docker cp test too: the VM's kernel refuses an
# overlay whose upper dir is on a detached mount, which copying out of a stopped
# disk-limited container needs (boxd answers that with a 409 there).
run_vm "integration suite" -- "$suite" root_ --skip network:: \
    --skip crash::root_crash_while_attaching --skip boxctl::root_boxctl_network \
    --skip boxctl::root_boxctl_run_dns \
    --skip docker_cli::root_docker_cli_logs_and_events \
    --skip docker_cli::root_docker_cli_cp_maps_owners_in_a_user_namespace \
    --skip docker_cli::root_docker_cli_cp_with_a_disk_limit \
    --skip docker_cli::root_docker_cli_interactive_on_a_terminal \
    --skip docker_cli::root_docker_cli_images \
    --skip docker_cli::root_docker_archive_endpoints_on_the_wire \
    --skip images_more:: --skip readme:: \
    --skip docker_cli::root_docker_cli_refuses_what_boxd_does_not_do \
    --skip docker_cli::root_docker_cli_on_the_docker_socket \
    --skip docker_cli::root_docker_py_drives_boxd \
    --skip docker_compose:: \
    --skip docker_cli::root_docker_cli_networks_ports_attach_and_df \
    --skip volumes::root_a_user_namespaced_container_owns_its_fresh_volumes --test-threads 2
# Under delegation, the tests that drive cgroups (limits, OOM and memory events, stats,
# delete/leak checks, the cgroup namespace, the device program, the daemon's own leaf):
# the whole suite twice would not fit the VM's time budget under emulation.
run_vm "cgroup tests, delegated (boxd.slice/boxd.service)" --cgroup boxd.slice/boxd.service -- \
    "$suite" --test-threads 2 limits::root_ observe::root_ lifecycle::root_delete \
    isolation::root_container_sees_its_own_cgroup restart::root_ delegation::root_ \
    devices::root_
