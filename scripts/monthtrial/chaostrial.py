#!/usr/bin/env python3
"""chaostrial: monthtrial's month of nights under chaos, checked by the same oracle after every night.

The nights, the sellers' lives between them and the oracle are monthtrial.py's (read its header);
this trial runs them under chaos drawn from one seed, printed first, so that a failure can be
replayed (the moments of the kills and the draws of paysim's faults then fall alike; the machine's
timing does not):

  - settle killed (SIGKILL) at a random moment of a run, up to three times on some nights,
    each time run again as a CronJob's retry would (a run ending 1 or 75, or killed, is run
    again, up to --attempts times; one ending 0, 2, 3 or 4 is not);
  - provider faults on all three providers and the SFTP server, played by paysim (--faults,
    seeded by the trial's seed): HTTP 5xx, "retry later", 429, connections reset, answers lost
    after the request was applied, slow answers (1.5 s) and answers held past settle's 10 s
    attempt timeout (timeouts), at rates scaled by a factor the seed draws (0.5 to 3: about 10% to 60% of the
    requests faulted, most retried within a run, some failing its stage: exit 1, run again);
  - the ledger connections of a running settle ended (pg_terminate_backend of its backends) on
    two nights;
  - two settle processes started on the same date at once on three nights (the second, on some,
    with --lock-wait 2m: it waits for the first, then resumes the date).

The outage night (Infinia pointing at nothing) is run once, without chaos, as monthtrial runs it.

Checks (each failure printed as PROBLEM, with the night):

  (1) after each run that ends 0 or 4, from settle report of its date(s) (written again from the
      ledger into a scratch directory) and paysim's state: every order of the date is in
      orders.csv; no side effect of the date is left planned, sent or unknown; paysim agrees
      with every revenue share attempt of the date (succeeded: SUCCESS of that amount; failed:
      not SUCCESS). After one that ends 0, besides: no order of the date held or left unpaid for
      a reason a person must act on, and paysim holds nothing frozen of the date's WeChat
      transactions (an exit 0 with work left undone);
  (2) after each night, from paysim's state: no revenue share subject (RS/date/seller/currency)
      paid SUCCESS under two requestNos, no SUCCESS revenue share that no payouts.csv knows, no
      WeChat transaction with more than one accepted distribution or unfreeze;
  (3) after each night whose every date run ended 0 or 4, monthtrial's oracle over those dates
      (every minor unit per seller and currency: paid at paysim + carried + held = owed, the
      commission to the minor unit), the reports of every date written again first;
  (4) at the end, monthtrial's oracle over the whole month, as monthtrial checks it.

It takes 10 to 20 minutes on two cores (the kills' re-runs and the faults' retries). Needs what
monthtrial.py needs: python3, psql, PostgreSQL with trust authentication, `make build` first. Not
part of `make test`.

Usage: python3 scripts/monthtrial/chaostrial.py [--seed N] [--bin bin] [--pg-url URL] [--keep]
       [--attempts N] [--fault-scale X]
Exit 0 when every check passes, 1 when one fails, 2 on a setup error. The database
(chaostrial_<pid>) is dropped and paysim stopped at the end, unless --keep.
"""
import argparse
import csv
import datetime
import json
import os
import random
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter, defaultdict

sys.dont_write_bytecode = True  # no __pycache__ beside the scripts
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import monthtrial as mt  # noqa: E402

IN_FLIGHT = ("planned", "sent", "unknown", "processing")
RETRIED = (1, 75)  # and a killed run (negative): what a CronJob's retry runs again


class ChaosTrial(mt.Trial):
    def __init__(self, args):
        super().__init__(args)
        self.db = f"chaostrial_{os.getpid()}"
        self.url = self.admin.rsplit("/", 1)[0] + f"/{self.db}?sslmode=disable"
        self.env["SETTLE_DATABASE_URL"] = self.url
        self.chaos_seed = args.seed
        self.attempts = args.attempts
        rng = random.Random(args.seed)
        self.rng = rng
        scale = rng.uniform(0.5, 3)  # drawn all the same: the seed's plan does not depend on --fault-scale
        if args.fault_scale is not None:
            scale = args.fault_scale
        p = lambda base: f"{base * scale:.4f}"  # noqa: E731
        self.faults = ";".join([
            f"*:5xx~{p(0.03)}", f"*:busy~{p(0.02)}", f"*:429~{p(0.02)}", f"*:reset~{p(0.02)}",
            f"*:lost~{p(0.03)}", f"*:latency~{p(0.03)},delay=1500ms", f"*:held~{p(0.003)},delay=11s"])
        self.paysim_args = ["--faults", self.faults, "--seed", str(args.seed)]
        quiet = {mt.OUTAGE_NIGHT, mt.SKIPPED_NIGHT}
        chaos_nights = [n for n in range(mt.NIGHTS) if n not in quiet]
        self.kill_nights = set(rng.sample(chaos_nights, mt.NIGHTS // 2))
        self.pg_nights = set(rng.sample(chaos_nights, 2))
        self.twin_nights = set(rng.sample(chaos_nights, 3))
        self.night = 0
        self.last_rc = {}  # date -> how its latest invocation ended
        self.took = []  # seconds of the runs that ended by themselves
        self.problems = []
        self.stats = Counter()
        self.check_dir = os.path.join(self.work, "check")

    def problem(self, text):
        line = f"night {self.night + 1}: {text}"
        print("  PROBLEM:", line, flush=True)
        self.problems.append(line)

    # ---- settle under chaos ----
    def start(self, cmd, env, tag):
        self.log.write(f"== [{tag}] {' '.join(cmd[1:])}\n")
        self.log.flush()
        self.last_start = self.log.tell()  # where this run's output begins (last_failure)
        return subprocess.Popen(cmd, env=env, stdout=self.log, stderr=self.log), time.monotonic()

    def finish(self, proc, t0, limit=1800):
        try:
            rc = proc.wait(limit)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
            self.problem(f"settle (pid {proc.pid}) still running after {limit} s: killed")
        return rc, time.monotonic() - t0

    def moment(self):
        est = sorted(self.took)[len(self.took) // 2] if self.took else 3.0
        return self.rng.uniform(0.05, 1.2 * est)

    def attempt(self, cmd, env, kill_at=None, pg_at=None):
        proc, t0 = self.start(cmd, env, "kill" if kill_at else "pg" if pg_at else "run")
        if kill_at is not None:
            try:
                proc.wait(kill_at)
                self.stats["kill came after the end"] += 1
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                self.stats["SIGKILL"] += 1
        if pg_at is not None:
            try:
                proc.wait(pg_at)
                self.stats["backend kill came after the end"] += 1
            except subprocess.TimeoutExpired:
                out = subprocess.run(["psql", "-X", "-q", "-A", "-t", self.admin, "-c",
                                      "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
                                      f"WHERE datname = '{self.db}' AND application_name LIKE 'settle%' AND pid <> pg_backend_pid()"],
                                     capture_output=True, text=True).stdout.strip()
                self.stats["backends terminated"] += int(out or 0)
                self.log.write(f"== terminated {out} backends of settle at {pg_at:.2f} s\n")
        rc, took = self.finish(proc, t0)
        if kill_at is None and rc >= 0:
            self.took.append(took)
        self.stats[f"exit {rc}"] += 1
        return rc

    def run(self, *args, env=None):
        cmd = [os.path.join(self.bin, "settle"), "run", "--rules", self.rules, "--min-payout", mt.MIN_PAYOUT,
               "--provider-poll", "100ms", "--out", self.reports, *args]
        shown = f"run {' '.join(args) or '(nightly)'} --rules {os.path.basename(self.rules)}"
        dates = self.dates_of(args)
        if env is not None:  # the outage night: once, as monthtrial runs it
            rc = self.attempt(cmd, env)
            print(f"  settle {shown}: exit {rc} (outage, no chaos)", flush=True)
            for d in dates:
                self.last_rc[d] = rc
            return rc
        seq = []
        n = self.night
        if n in self.kill_nights:
            for _ in range(self.rng.choice([0, 1, 1, 2, 3])):
                seq.append(f"kill{self.attempt(cmd, self.env, kill_at=self.moment())}")
        if n in self.pg_nights:
            self.pg_nights.discard(n)  # once a night
            seq.append(f"pg:{self.attempt(cmd, self.env, pg_at=self.moment())}")
        if n in self.twin_nights:
            self.twin_nights.discard(n)
            a, ta = self.start(cmd, self.env, "twin a")
            wait = self.rng.random() < 0.5
            b, tb = self.start(cmd + (["--lock-wait", "2m"] if wait else []), self.env, "twin b")
            ra, _ = self.finish(a, ta)
            rb, _ = self.finish(b, tb)
            self.stats["twin pairs"] += 1
            self.stats[f"twins exit {sorted((ra, rb))}"] += 1
            seq.append(f"twins:{ra}/{rb}{' (b waits)' if wait else ''}")
            if ra == 0 and rb == 0:
                self.stats["twins both 0"] += 1
        rc = None
        for i in range(self.attempts):
            rc = self.attempt(cmd, self.env)
            seq.append(str(rc))
            if rc not in RETRIED:
                break
        else:
            self.problem(f"{shown}: still exit {rc} after {self.attempts} runs")
        print(f"  settle {shown}: exit {rc} ({' '.join(seq)})", flush=True)
        for d in dates:
            self.last_rc[d] = rc
        if rc in (0, 4):
            for d in dates:
                self.check_exit(rc, d, shown)
        return rc

    def last_failure(self):
        """The error of the last settle run's last line ("settle failed", or settle: on a terminal), as run.log
        holds it: what a problem about the run's end needs beside the ledger's word (exit 4 names why)."""
        self.log.flush()
        last = "(none logged)"
        with open(self.log.name, errors="replace") as f:
            f.seek(getattr(self, "last_start", 0))
            for line in f:
                if '"msg":"settle failed"' in line:
                    try:
                        last = json.loads(line).get("error", line.strip())
                    except ValueError:
                        last = line.strip()
                elif line.startswith("settle: "):
                    last = line.strip()
        return last[:1500]

    def dates_of(self, args):
        a = list(args)
        if "--date" in a:
            return [a[a.index("--date") + 1]]
        if "--from" in a:
            lo, hi = a[a.index("--from") + 1], a[a.index("--to") + 1]
            return [d for d in self.dates if lo <= d <= hi]
        return [self.dates[-1]]  # the nightly run: yesterday

    # ---- checks ----
    def state(self):
        with urllib.request.urlopen(self.paysim_url + "/paysim/state") as resp:
            return json.load(resp)

    def report(self, date, out):
        rc = subprocess.run([os.path.join(self.bin, "settle"), "report", "--date", date, "--out", out],
                            env=self.env, stdout=self.log, stderr=self.log).returncode
        if rc != 0:
            self.problem(f"settle report --date {date}: exit {rc}")
        return os.path.join(out, date)

    def check_exit(self, rc, date, shown):
        """(1): what the ledger and paysim show of a date whose run ended rc (0 or 4)."""
        p = self.report(date, self.check_dir)
        with open(os.path.join(p, "orders.csv")) as f:
            orders = {r["order_no"]: r for r in csv.DictReader(f) if r["action"] == "settle"}
        with open(os.path.join(p, "payouts.csv")) as f:
            payouts = list(csv.DictReader(f))
        platform = self.rows("SELECT order_no, provider, provider_txn_id, seller_id FROM orders "
                             f"WHERE (confirmed_at AT TIME ZONE '{mt.TZ_NAME}')::date = '{date}'")
        state = self.state()
        shares = {r["request_no"]: r for r in state["infinia"]["revenue_shares"]}
        frozen = {t["transaction_id"]: t["frozen_minor"] for t in state["wechat"]["transactions"]}
        for o in platform:
            r = orders.get(o["order_no"])
            if r is None:
                self.problem(f"{shown} exit {rc}: order {o['order_no']} of {date} is in no orders.csv")
                continue
            if rc == 0 and (r["state"] not in ("paid", "carried") or r["reason"].startswith("held:")):
                self.problem(f"{shown} exit 0: order {o['order_no']} {r['state']} ({r['reason']})")
            if rc == 0 and o["provider"] == "wechatpay" and frozen.get(o["provider_txn_id"], 0) != 0:
                self.problem(f"{shown} exit 0: paysim still holds {frozen[o['provider_txn_id']]} frozen of WeChat "
                             f"{o['provider_txn_id']} ({o['order_no']}), orders.csv {r['state']}")
        for r in payouts:
            if r["state"] in IN_FLIGHT:
                self.problem(f"{shown} exit {rc}: {r['kind']} {r['subject']} attempt {r['attempt']} left {r['state']} "
                             f"({r['path']}; {r['last_error']}); the run's last words: {self.last_failure()}")
            if r["kind"] != "revenue_share" or r["state"] not in ("succeeded", "failed"):
                continue
            at = shares.get(r["key"])
            ok = (at is not None and at["status"] == "SUCCESS" and at["amount_minor"] == int(r["amount_minor"])) \
                if r["state"] == "succeeded" else (at is None or at["status"] != "SUCCESS")
            if not ok:
                self.problem(f"{shown} exit {rc}: {r['subject']} {r['key']} {r['state']} {r['amount_minor']} in the ledger, "
                             f"paysim: {at}")

    def after_night(self, night):
        """(2) and (3), after a night's runs."""
        run = sorted(self.last_rc)
        finished = [d for d in run if self.last_rc[d] in (0, 4)]
        for d in finished:
            self.report(d, self.reports)
        keys = {}
        for d in os.listdir(self.reports):
            with open(os.path.join(self.reports, d, "payouts.csv")) as f:
                for r in csv.DictReader(f):
                    if r["kind"] == "revenue_share":
                        keys[r["key"]] = r["subject"]
        state = self.state()
        by_subject = defaultdict(list)
        for rs in state["infinia"]["revenue_shares"]:
            if rs["status"] != "SUCCESS":
                continue
            subject = keys.get(rs["request_no"])
            if subject is None:
                if len(finished) == len(run):  # a date left unfinished may not have written its reports
                    self.problem(f"paysim paid {rs['request_no']} ({rs['seller_id']} {rs['amount_minor']} {rs['currency']}), "
                                 "which no payouts.csv names")
                continue
            by_subject[subject].append(rs["request_no"])
        for subject, nos in by_subject.items():
            if len(nos) > 1:
                self.problem(f"{subject} paid {len(nos)} times at paysim: {nos}")
        for t in state["wechat"]["transactions"]:
            if t["requests"] > 1:
                self.problem(f"WeChat {t['transaction_id']}: {t['requests']} distributions or unfreezes accepted")
        if len(finished) != len(run):
            print(f"  (oracle skipped: {[d for d in run if d not in finished]} not finished)", flush=True)
            return
        for p in mt.oracle(self, upto=finished, quiet=True):
            self.problem(f"oracle over {finished[0]}..{finished[-1]}: {p}")

    def night_begins(self, night):
        if night > 0:
            self.after_night(night - 1)
        self.night = night


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=None, help="the chaos's seed (default: drawn, and printed)")
    ap.add_argument("--bin", default="bin", help="directory of the settle and paysim binaries (make build)")
    ap.add_argument("--pg-url", default="postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable",
                    help="an administrative URL of the PostgreSQL server to create the trial's database on")
    ap.add_argument("--attempts", type=int, default=8, help="runs of an invocation a CronJob's retries allow")
    ap.add_argument("--fault-scale", type=float, default=None, help="the faults' rates' factor (default: drawn, 0.5 to 3)")
    ap.add_argument("--keep", action="store_true", help="keep the database, the work directory and its reports")
    args = ap.parse_args()
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1, 1 << 31)
    for b in ("settle", "paysim"):
        if not os.access(os.path.join(args.bin, b), os.X_OK):
            print(f"chaostrial: no {b} in {args.bin}: make build first", file=sys.stderr)
            return 2
    t = ChaosTrial(args)
    print(f"seed {t.chaos_seed} (replay: --seed {t.chaos_seed}); faults {t.faults}", flush=True)
    print(f"kills on nights {sorted(n + 1 for n in t.kill_nights)}, ledger connections ended on "
          f"{sorted(n + 1 for n in t.pg_nights)}, twin runs on {sorted(n + 1 for n in t.twin_nights)}", flush=True)
    started = time.monotonic()
    try:
        print(f"dates {t.dates[0]} to {t.dates[-1]}; work directory {t.work}", flush=True)
        t.seed()
        t.start_paysim()
        t.nights()
        t.night = mt.NIGHTS  # the correction and the reports after the last night
        t.after_night(mt.NIGHTS - 1)
        problems = t.problems + [f"end: {p}" for p in mt.oracle(t)]
        requests = t.state()["requests"]
    finally:
        t.close(args.keep)
    print(f"chaos: {dict(sorted(t.stats.items()))}")
    print("paysim requests: " + ", ".join(f"{k} {v['total']} ({v['too_many_429']} 429s)" for k, v in sorted(requests.items())
                                        if k != "sftp"))
    for p in problems:
        print("PROBLEM:", p)
    print(f"seed {t.chaos_seed}: " + ("every minor unit accounted for, nothing paid twice, no exit 0 with work left"
                               if not problems else f"{len(problems)} problems") +
          f" ({time.monotonic() - started:.0f} s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
