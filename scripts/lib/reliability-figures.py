#!/usr/bin/env python3
"""The measured column of docs/reliability.md, row by row, from the logs that
scripts/reliability.sh captured: every figure printed here was read out of a test's output,
and every verdict is that test's own result (a test fails when its expectation is not met).

Usage: reliability-figures.py LOG_DIR FUZZ_SECONDS  (markdown on stdout)
"""
import json
import os
import re
import sys

out, secs = sys.argv[1], sys.argv[2]


def log(name):
    try:
        return open(os.path.join(out, f"{name}.log"), errors="replace").read()
    except OSError:
        return ""


def result(name, test):
    """`passed`, `FAILED` or `not run`, from libtest's line for TEST in LOG."""
    text = log(name)
    if re.search(rf"^test (\S+::)?{re.escape(test)} \.\.\. ok$", text, re.M):
        return "passed"
    if re.search(rf"^test (\S+::)?{re.escape(test)} \.\.\. FAILED$", text, re.M):
        return "FAILED"
    return "not run"


def line(name, prefix):
    """The last line of LOG starting with PREFIX, without it ('' if none)."""
    found = [l[len(prefix):] for l in log(name).splitlines() if l.startswith(prefix)]
    return found[-1] if found else ""


def lines(name, prefix):
    return [l for l in log(name).splitlines() if l.startswith(prefix)]


def json_after(name, prefix):
    try:
        return json.loads(line(name, prefix) or "{}")
    except ValueError:
        return {}


rows = []  # (row, measured, verdict)


def row(n, measured, verdict):
    rows.append((n, measured or "(no figure: the test did not print it)", verdict))


# Hostile ESP, rows 1-8.
H = "espd-hostile"
hv = result(H, "hostile_esp_is_dropped_under_its_reason_and_legitimate_traffic_flows")
sent = json_after(H, "sent: ")
drops = json_after(H, "espctl stats --json drops: ")
for n, kind, counter in [(1, "replay", "drop-replay"), (2, "auth", "drop-auth"), (3, "no-sa", "drop-no-sa"),
                         (5, "bad-length", "drop-bad-length"), (6, "malformed", "drop-malformed"),
                         (7, "oversize", "drop-chained-mbuf")]:
    what = "rows 3 and 4 together" if n == 3 else ""
    row(n, f"{sent.get(kind, '?')} sent, `{counter}` {drops.get(counter, 0)}" + (f" ({what})" if what else ""), hv)
row(4, f"counted with row 3: `drop-no-sa` {drops.get('drop-no-sa', 0)} for {sent.get('no-sa', '?')} sent", hv)
row(8, "; ".join(l.strip() for l in lines(H, "inside: ")), hv)

# SIGKILL and restart of espd, row 9.
rv = result("espd-restart", "sigkill_and_restart_resumes_the_sas_without_reusing_a_sequence_number")
row(9, "; ".join(x for x in (line("espd-restart", "first run: "), line("espd-restart", "second run: ")) if x), rv)

# The SA database, rows 10-14.
for n, t in [(10, "a_full_sa_table_refuses_cleanly_and_changes_nothing"),
             (11, "a_full_event_ring_counts_drops_and_keeps_the_queued_events_intact"),
             (12, "create_attach_and_refusals"),
             (13, "impossible_header_values_are_refused_with_the_reason"),
             (14, "corrupted_spi_index_entries_are_misses_not_panics")]:
    row(n, f"`{t}`", result("sadb-faults", t))

# Fuzzing, rows 15-19.
fuzz = {}
for l in log("fuzz").split("=== fuzz: summary", 1)[-1].splitlines():
    f = l.split()
    if f and "/" in f[0] and len(f) >= 3:
        fuzz[f[0]] = (f[1], f[2])
for n, targets in [(15, ["sadb/attach"]), (16, ["iked/config_parse", "iked/ctl_request", "iked/ctl_response"]),
                   (17, ["ike/engine_quick_mode"]), (18, ["ike/decode_message", "ike/engine_datagram"]),
                   (19, ["esp/inbound"])]:
    got = [f"`{t}` {fuzz[t][1]} runs, {fuzz[t][0]}" for t in targets if t in fuzz]
    verdict = "passed" if got and all(fuzz[t][0] == "ok" for t in targets if t in fuzz) and len(got) == len(targets) \
        else ("FAILED" if got else "not run")
    row(n, f"{secs} s each: " + "; ".join(got) if got else "", verdict)

# IKE against a running iked, rows 20-26.
E = "ike-e2e"
def script_result(name, tag):
    """The verdict line a harness script prints (`TAG: 1 passed, 0 failed`): with
    --nocapture, libtest's own `... ok` is not on one line with the test's name."""
    text = log(name)
    if f"{tag}: 1 passed, 0 failed" in text:
        return "passed"
    return "FAILED" if f"{tag}: 0 passed" in text or "FAILED" in text else "not run"


ev = {c: script_result(E, f"e2e-ike {c}") for c in ("hostile", "restart", "dpd", "full")}


def hostile(*keys):
    return "; ".join(l[len("hostile: "):] for l in lines(E, "hostile: ") if any(k in l for k in keys))


row(20, hostile("malformed", "unknown cookies", "bad HASH", "legitimate pings"), ev["hostile"])
row(21, hostile("spoofed", "half-open", "RSS"), ev["hostile"])
row(22, hostile("Aggressive Mode"), ev["hostile"])
row(23, "; ".join(l[len("restart: "):] for l in lines(E, "restart: ")), ev["restart"])
row(24, f"gw-a{line(E, 'dpd: gw-a')}; ikectl monitor{line(E, 'dpd: ikectl monitor')}", ev["dpd"])
row(25, "; ".join(l[len("full: "):] for l in lines(E, "full: ") if "ERROR" not in l), ev["full"])
interop = line("interop-secrets", "    secrets: ")
row(26, "; ".join(x for x in (line(E, "secrets: "), interop and f"against strongSwan: {interop}") if x),
    "passed" if ev["hostile"] == "passed" and "ok   secrets:" in log("interop-secrets")
    else ("FAILED" if "FAIL" in ev["hostile"] or "FAIL secrets" in log("interop-secrets") else "not run"))

# Secrets in memory and in comparisons, rows 27-28.
zt = ["rust_backend_sessions_leave_no_key_material_in_freed_memory", "rust_backend_contexts_leave_no_keys_in_freed_memory",
      "ipsec_mb_contexts_leave_no_keys_in_freed_memory", "the_engine_leaves_no_key_material_in_freed_memory"]
zr = [(t, result("zeroize", t), result("zeroize-release", t)) for t in zt]
row(27, "; ".join(f"`{t}` debug {d}, release {r}" for t, d, r in zr),
    "passed" if all(d == r == "passed" for _, d, r in zr) else "FAILED")
row(28, "`no_icv_tag_or_hash_is_compared_with_eq`", result("constant-time", "no_icv_tag_or_hash_is_compared_with_eq"))

# Hardening, rows 29-41: each row's tests, by name, with their results (and figures where
# the test prints them).
def tests(n, name, names, extra="", also=None):
    """Row N: the tests NAMES of log NAME with their results, then EXTRA; ALSO, another
    verdict the row depends on."""
    res = [(t, result(name, t)) for t in names]
    verdicts = [r for _, r in res] + ([also] if also else [])
    verdict = "passed" if all(r == "passed" for r in verdicts) else ("FAILED" if "FAILED" in verdicts else "not run")
    row(n, "; ".join(f"`{t}` {r}" for t, r in res) + (f"; {extra}" if extra else ""), verdict)


tests(29, "file-safety", ["a_region_of_another_uid_with_mode_0666_is_refused", "a_region_of_ours_with_group_bits_is_refused",
                          "a_symlink_to_a_valid_region_of_ours_is_refused", "a_fifo_at_the_path_is_refused_without_hanging",
                          "the_private_directory_is_created_0700_and_checked",
                          "a_symlink_or_a_foreign_file_at_the_lock_path_stops_iked",
                          "a_foreign_or_world_readable_sa_database_stops_iked",
                          "the_key_log_refuses_symlinks_and_files_or_directories_of_others"])
tests(30, "file-safety", ["espd_exits_with_the_cause_when_its_sa_database_is_truncated_to_nothing",
                          "espd_exits_naming_the_file_when_its_sa_database_loses_its_last_page",
                          "a_region_truncated_under_a_process_touching_it_ends_it_with_the_message_and_status",
                          "a_sigbus_outside_any_region_gets_the_default_action",
                          "iked_exits_naming_its_sa_database_when_the_file_shrinks"])
tests(31, "file-safety", ["the_control_socket_serves_root_and_ctl_group_and_refuses_other_callers"])
tests(32, "hardening", ["two_peers_with_the_same_outbound_spi_each_get_their_own_traffic",
                        "peers_sharing_an_outbound_spi_keep_their_own_sas"],
      f"`outbound_sas_share_an_spi_towards_two_peers` {result('sadb-faults', 'outbound_sas_share_an_spi_towards_two_peers')}")
tests(33, "hardening", ["transport_mode_admits_only_the_negotiated_selectors"])
tests(34, "hardening", ["forged_quick_mode_and_informational_messages_change_nothing"])
tests(35, "hardening", ["unauthenticated_notifies_and_bad_messages_do_not_end_a_half_open_phase_1",
                        "unauthenticated_notifies_and_bad_messages_do_not_end_a_half_open_aggressive_mode",
                        "a_half_open_phase_1_that_times_out_reports_the_notify_it_got"])
tests(36, "hardening", ["only_an_authenticated_message_from_the_new_port_moves_the_peer"])
tests(37, "hardening", ["a_replayed_quick_mode_message_1_or_informational_is_refused",
                        "the_unfinished_responder_quick_mode_limit_is_counted_and_retried"])
tests(38, "hardening", ["spoofed_message_1_floods_leave_room_for_any_and_configured_peers",
                        "the_reserve_admits_configured_peers_when_the_any_share_is_past_message_3"],
      "; ".join(l[len("flood: "):] for l in lines("ike-flood", "flood: ")), also=script_result("ike-flood", "ike-flood"))
tests(39, "hardening", ["initial_contact_behind_one_nat_deletes_only_the_senders_sas"])
tests(40, "hardening", ["a_flood_of_unsolicited_arp_and_nd_learns_nothing",
                        "a_flood_of_addresses_to_resolve_keeps_static_and_used_neighbours", "an_unconfirmed_neighbour_expires"])
doc = log("dpdk")
m = re.search(r"^test result: (\w+)\. (\d+) passed; (\d+) failed", doc.split("Doc-tests dpdk", 1)[-1], re.M) if "Doc-tests dpdk" in doc else None
tests(41, "dpdk", ["shim_and_safe_layer"],
      f"doc tests (6 of them `compile_fail`): {m.group(2)} passed, {m.group(3)} failed" if m else "doc tests: not run")

print("| # | measured (read from the test's output) | test result |")
print("|---|---|---|")
for n, m, v in sorted(rows, key=lambda r: r[0]):
    print(f"| {n} | {m.replace('|', '/')} | {v} |")
