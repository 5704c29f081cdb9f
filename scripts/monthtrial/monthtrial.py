#!/usr/bin/env python3
"""monthtrial: a month of nights of the real binaries, checked by an oracle that shares no code with settle.

It creates a platform database of its own (the reference schema, sql/platform/schema.sql), writes
eight sellers and 25 nights of orders into it (all three providers' channels, USD, JPY and CNY,
refunds netted on the order's own day), starts paysim as a process for those dates, and settles
the nights one after another with bin/settle, changing the sellers' lives between nights as the
README says settle handles them:

  - S00002: its Infinia binding PENDING for four nights, then ACTIVE;
  - S00003: FROZEN for three nights, later REJECTED for two, ACTIVE after each;
  - S00004: a seller share below --min-payout every night (carried until it adds up);
  - S00005: its WeChat Pay sub_mchid missing for four nights (orders held), then given back and
    the held dates run again, as a person would;
  - S00007: no Infinia seller id for three nights, then one, the held dates run again;
  - S00008: late refunds larger than what it is owed later (a clawback left open);
  - late refunds of earlier days' orders on nine nights, one of a WeChat order (ignored), one
    above what is left of its order (rejected: it holds the seller's USD payouts until the
    platform corrects it, which the trial does at the end, running the refund's date again);
  - the rules file changed mid-month (a rule effective on dates already split, which keep their
    splits, and one on a later date);
  - an Infinia outage for one night (its URL and SFTP address pointing at nothing: exit 1), the
    date run again the next night;
  - the night of the 24th date skipped, the last date run by a nightly run (no --date), which
    names the skipped one, then a backfill of it (--from/--to).

The oracle then computes from the platform's rows and the rules files alone, as README "Commission
rules" and "Adjustments" describe them, what each seller is owed per currency (orders net of
commission, less late refunds' seller parts; a late refund above what is left of its order takes
nothing back; one of a WeChat order is ignored), and checks every minor unit:

  (a) paysim's state: the succeeded revenue shares per seller and currency, and each WeChat
      transaction's commission distributed to the platform and the rest unfrozen to its seller;
  (b) settle's reports, written again for every date first (settle report): each order's split
      and rule in orders.csv, each late refund's parts, the succeeded revenue shares of
      payouts.csv, summary.csv's and sellers.csv's checks, each date's carried forward against
      the next date's carried in;
  (c) settle status: the open carried balances of every seller;

so that owed = paid (paysim) + carried (settle status, with its reason) + held (orders.csv, named)
for every seller and currency, and per currency the commission the platform keeps is the orders'
net less what the sellers are owed, and equals settle's commission (orders.csv) to the minor unit.

The trial's dates are the 25 days up to yesterday in Asia/Shanghai (the nightly run settles
yesterday): it must be run on a clock that is right. It takes about five minutes on two cores.

Needs: python3 (standard library only), psql, PostgreSQL with trust authentication for local TCP
(as `make test` sets it up), and the binaries: `make build` first. Not part of `make test`.

Usage: python3 scripts/monthtrial/monthtrial.py [--bin bin] [--pg-url URL] [--keep]
Exit 0 when every check passes, 1 when one fails (each failure is printed), 2 on a setup error.
The database (monthtrial_<pid>) is dropped and paysim stopped at the end, unless --keep.
"""
import argparse
import csv
import datetime
import io
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict

TZ_NAME = "Asia/Shanghai"
TZ = datetime.timezone(datetime.timedelta(hours=8))  # Asia/Shanghai has no daylight saving time
NIGHTS = 25
MIN_PAYOUT = "USD=10.00,JPY=1000,CNY=50.00"

RULES_V1 = """seller_id,category,currency,rate_bps,fixed_minor,min_minor,max_minor,effective_from
,,,500,,,,2020-01-01
,electronics,,300,,,,2020-01-01
,,JPY,450,,50,,2020-01-01
,,USD,450,30,50,5000,2024-01-01
S00001,,,200,,,,2020-01-01
"""

# (seller, Infinia seller id, WeChat Pay sub_mchid); paysim binds INF00000001..8 ACTIVE.
SELLERS = [
    ("S00001", "INF00000001", None),
    ("S00002", "INF00000002", None),
    ("S00003", "INF00000003", None),
    ("S00004", "INF00000004", None),
    ("S00005", None, "1900000005"),
    ("S00006", None, "1900000006"),
    ("S00007", "INF00000007", None),
    ("S00008", "INF00000008", None),
]

# Each seller's orders of a night: (provider, currency, smallest, largest amount).
PLAN = {
    "S00001": [("infiniapay", "USD", 1000, 90000), ("infiniapay", "JPY", 500, 50000),
               ("infiniapay", "CNY", 1000, 80000), ("payprotocol", "USD", 500, 20000)],
    "S00002": [("infiniapay", "USD", 1000, 50000), ("infiniapay", "CNY", 2000, 30000)],
    "S00003": [("infiniapay", "USD", 1000, 40000), ("infiniapay", "JPY", 1000, 30000)],
    "S00004": [("infiniapay", "USD", 250, 251)],
    "S00005": [("wechatpay", "CNY", 1000, 60000), ("wechatpay", "CNY", 1000, 60000)],
    "S00006": [("wechatpay", "CNY", 1000, 60000), ("wechatpay", "CNY", 1000, 60000)],
    "S00007": [("infiniapay", "USD", 1000, 50000), ("infiniapay", "CNY", 2000, 30000)],
}


def s00008_plan(night):
    if night < 5:
        return [("infiniapay", "USD", 1000, 20000)]
    return [("infiniapay", "USD", 300, 900)] if night % 3 == 0 else []


def order_no(date, seller, k=0):
    return f"O{date.replace('-', '')}{seller[-2:]}{k}"


# Late refunds: night index -> [(refund_no, night index of the order, seller, k, amount)]; an
# amount of None is twice the order's amount (above what is left of it).
LATE = {
    2: [("LR1", 0, "S00001", 0, 500), ("LR2", 0, "S00003", 1, 300)],
    4: [("LR3", 1, "S00008", 0, 15000), ("LR4", 2, "S00008", 0, 16000), ("LR5", 0, "S00006", 0, 400)],
    6: [("LR6", 0, "S00001", 0, None)],
    7: [("LR7", 3, "S00008", 0, 10000), ("LR8", 4, "S00008", 0, 12000)],
    9: [("LR9", 1, "S00002", 0, 700), ("LR10", 0, "S00007", 0, 800)],
    12: [("LR11", 9, "S00001", 2, 1234), ("LR12", 8, "S00003", 0, 999)],
    15: [("LR13", 10, "S00002", 1, 4321), ("LR14", 9, "S00004", 0, 100)],
    19: [("LR15", 14, "S00001", 0, 2500), ("LR16", 13, "S00007", 1, 1500)],
    23: [("LR17", 18, "S00003", 0, 600)],
}
RULES_CHANGE_NIGHT = 13  # rules v2 from this night's run on
SKIPPED_NIGHT = 23
OUTAGE_NIGHT = 18


def fnv1a64(s):
    h = 0xcbf29ce484222325
    for b in s.encode():
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def pp_txn(ono):
    """A Pay Protocol outTradeNo paysim creates paid (it picks a status by FNV-64a of it)."""
    i = 0
    while fnv1a64(f"PP{ono}{i}") % 100 < 15:
        i += 1
    return f"PP{ono}{i}"


def sql_str(v):
    return "NULL" if v is None else "'" + str(v).replace("'", "''") + "'"


class Trial:
    def __init__(self, args):
        self.bin = os.path.abspath(args.bin)
        self.admin = args.pg_url
        self.db = f"monthtrial_{os.getpid()}"
        self.url = self.admin.rsplit("/", 1)[0] + f"/{self.db}?sslmode=disable"
        self.work = tempfile.mkdtemp(prefix="monthtrial.")
        self.reports = os.path.join(self.work, "reports")
        today = datetime.datetime.now(TZ).date()
        self.dates = [(today - datetime.timedelta(days=NIGHTS - i)).isoformat() for i in range(NIGHTS)]
        self.rules_v1 = os.path.join(self.work, "rules_v1.csv")
        self.rules_v2 = os.path.join(self.work, "rules_v2.csv")
        change = self.dates[RULES_CHANGE_NIGHT]
        with open(self.rules_v1, "w") as f:
            f.write(RULES_V1)
        with open(self.rules_v2, "w") as f:
            # a rule effective on dates split already (they keep their splits), one on a later date
            f.write(RULES_V1 + f",books,,1000,,,,{self.dates[RULES_CHANGE_NIGHT - 5]}\n"
                    f",,USD,600,30,50,5000,{self.dates[RULES_CHANGE_NIGHT + 3]}\n")
        # the rules file each date was first split with, by the schedule below
        self.rules_from = [("0000-00-00", self.rules_v1), (change, self.rules_v2)]
        self.rules = self.rules_v1
        self.env = dict(os.environ, SETTLE_DATABASE_URL=self.url)
        for k in list(self.env):
            if k.startswith("SETTLE_") and k != "SETTLE_DATABASE_URL":
                del self.env[k]
        self.paysim = None
        self.paysim_args = []  # more flags for paysim (chaostrial.py: its faults)
        self.log = open(os.path.join(self.work, "run.log"), "w")

    # ---- platform database ----
    def psql(self, sql, db=None):
        subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", db or self.url, "-c", sql],
                       check=True, stdout=subprocess.DEVNULL)

    def rows(self, sql):
        out = subprocess.run(["psql", "-X", "-q", self.url, "-c", f"\\copy ({sql}) to stdout csv header"],
                             capture_output=True, text=True, check=True).stdout
        return list(csv.DictReader(io.StringIO(out)))

    def seed(self):
        self.psql(f"CREATE DATABASE {self.db}", db=self.admin)
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", self.url, "-f",
                        os.path.join(root, "sql/platform/schema.sql")], check=True, stdout=subprocess.DEVNULL)
        rng = random.Random(42)
        out = ["BEGIN;"]
        for sid, inf, sub in SELLERS:
            out.append(f"INSERT INTO sellers (seller_id, name, infinia_seller_id, wechat_sub_mchid) "
                       f"VALUES ('{sid}', 'Seller {sid}', {sql_str(inf)}, {sql_str(sub)});")
        n = 0
        for night, d in enumerate(self.dates):
            for sid, _, _ in SELLERS:
                plan = s00008_plan(night) if sid == "S00008" else PLAN[sid]
                for k, (prov, cur, lo, hi) in enumerate(plan):
                    n += 1
                    ono = order_no(d, sid, k)
                    amt = rng.randint(lo, hi)
                    cat = rng.choice(["electronics", "books", "toys"])
                    txn = pp_txn(ono) if prov == "payprotocol" else f"42{n:020d}" if prov == "wechatpay" else f"INFT{ono}"
                    out.append(f"INSERT INTO orders VALUES ('{ono}', '{sid}', '{prov}', '{txn}', '{cur}', {amt}, "
                               f"'{cat}', 'CHN', '{d} 09:00:00+08', '{d} 10:00:00+08');")
                    # a refund netted on the order's own day (none of Pay Protocol's: paysim
                    # would keep it under review)
                    if prov != "payprotocol" and rng.random() < 0.2:
                        out.append(f"INSERT INTO refunds VALUES ('R{ono}a', '{ono}', {rng.randint(1, amt // 2)}, '{d} 12:00:00+08');")
        out.append("COMMIT;")
        subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", self.url], input="\n".join(out),
                       text=True, check=True, stdout=subprocess.DEVNULL)

    def late_refunds(self, night):
        d = self.dates[night]
        for rno, onight, sid, k, amt in LATE.get(night, []):
            ono = order_no(self.dates[onight], sid, k)
            # at most the order's amount, or twice it when None (above what is left)
            amount = "amount_minor * 2" if amt is None else str(amt)
            self.psql(f"INSERT INTO refunds SELECT '{rno}', '{ono}', LEAST({amount}, amount_minor * {2 if amt is None else 1}), "
                      f"'{d} 09:00:00+08' FROM orders WHERE order_no = '{ono}'")

    # ---- paysim and settle ----
    def start_paysim(self):
        ports = []
        for _ in range(2):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
            s.close()
        self.paysim_url = f"http://127.0.0.1:{ports[0]}"
        envfile = open(os.path.join(self.work, "paysim.env"), "w")
        self.paysim = subprocess.Popen(
            [os.path.join(self.bin, "paysim"), "--dir", os.path.join(self.work, "paysim-data"),
             "--http-addr", f"127.0.0.1:{ports[0]}", "--sftp-addr", f"127.0.0.1:{ports[1]}",
             "--bind-sellers", "8", "--platform-db", self.url, "--date", ",".join(self.dates), "--tz", TZ_NAME,
             *self.paysim_args],
            stdout=envfile, stderr=self.log)
        for _ in range(600):
            text = open(envfile.name).read()
            if "SETTLE_WECHAT_RECEIVER_NAME" in text:
                break
            if self.paysim.poll() is not None:
                raise SystemExit(f"monthtrial: paysim ended ({self.paysim.returncode}); see {self.log.name}")
            time.sleep(0.2)
        else:
            raise SystemExit("monthtrial: paysim did not start")
        for line in text.splitlines():
            if line.startswith("export "):
                k, v = line[len("export "):].split("=", 1)
                self.env[k] = v[1:-1].replace("'\\''", "'") if v.startswith("'") else v

    def ctl(self, *flags):
        subprocess.run([os.path.join(self.bin, "paysim"), "ctl", "--url", self.paysim_url, *flags],
                       check=True, stdout=self.log, stderr=self.log)

    def settle(self, *args, env=None, shown=None):
        self.log.write(f"== settle {' '.join(args)}\n")
        self.log.flush()
        rc = subprocess.run([os.path.join(self.bin, "settle"), *args], env=env or self.env,
                            stdout=self.log, stderr=self.log).returncode
        print(f"  settle {shown or ' '.join(args)}: exit {rc}", flush=True)
        return rc

    def run(self, *args, env=None):
        shown = f"run {' '.join(args) or '(nightly)'} --rules {os.path.basename(self.rules)}"
        return self.settle("run", "--rules", self.rules, "--min-payout", MIN_PAYOUT, "--provider-poll", "100ms",
                           "--out", self.reports, *args, env=env, shown=shown)

    def nights(self):
        d = self.dates
        for night, date in enumerate(d):
            self.night_begins(night)
            print(f"night {night + 1}: {date}", flush=True)
            if night == 0:
                self.ctl("--binding", "INF00000002=PENDING")
                self.psql("UPDATE sellers SET infinia_seller_id = NULL WHERE seller_id = 'S00007'")
            elif night == 2:
                self.psql("UPDATE sellers SET wechat_sub_mchid = NULL WHERE seller_id = 'S00005'")
            elif night == 3:
                self.psql("UPDATE sellers SET infinia_seller_id = 'INF00000007' WHERE seller_id = 'S00007'")
                for r in d[0:3]:  # a person runs the held dates again
                    self.run("--date", r)
            elif night == 4:
                self.ctl("--binding", "INF00000002=ACTIVE")
            elif night == 5:
                self.ctl("--binding", "INF00000003=FROZEN")
            elif night == 6:
                self.psql("UPDATE sellers SET wechat_sub_mchid = '1900000005' WHERE seller_id = 'S00005'")
                for r in d[2:6]:
                    self.run("--date", r)
            elif night == 8:
                self.ctl("--binding", "INF00000003=ACTIVE")
            elif night == RULES_CHANGE_NIGHT:
                self.rules = self.rules_v2
            elif night == 14:
                self.ctl("--binding", "INF00000003=REJECTED")
            elif night == 16:
                self.ctl("--binding", "INF00000003=ACTIVE")
            self.late_refunds(night)
            if night == SKIPPED_NIGHT:
                print("  skipped", flush=True)
                continue
            if night == OUTAGE_NIGHT:
                down = dict(self.env, SETTLE_INFINIA_URL="http://127.0.0.1:9/", SETTLE_SFTP_ADDR="127.0.0.1:9")
                self.run("--date", date, env=down)
                continue
            if night == OUTAGE_NIGHT + 1:
                self.run("--date", d[OUTAGE_NIGHT])
            if night == NIGHTS - 1:
                self.run()  # the nightly run: yesterday; it names the skipped date
                self.run("--from", d[SKIPPED_NIGHT], "--to", d[SKIPPED_NIGHT])
                continue
            self.run("--date", date)
        # The platform corrects the refund above its order; a person runs its date again, and
        # the next nightly run pays what its hold carried since.
        print("correction: LR6 made 3.00, its date run again, then the nightly run", flush=True)
        self.psql("UPDATE refunds SET amount_minor = 300 WHERE refund_no = 'LR6'")
        self.run("--date", d[6])
        self.run()
        for date in d:  # every date's reports again, from the ledger as it is now (README, Reports)
            self.settle("report", "--date", date, "--out", self.reports, shown=f"report --date {date}")

    def night_begins(self, night):
        """Called before each night's changes and runs (chaostrial.py checks the night before)."""

    def close(self, keep):
        if self.paysim and self.paysim.poll() is None:
            self.paysim.send_signal(signal.SIGTERM)
            try:
                self.paysim.wait(10)
            except subprocess.TimeoutExpired:
                self.paysim.kill()
        if keep:
            print(f"kept: database {self.db}, work directory {self.work}")
            return
        subprocess.run(["psql", "-X", "-q", self.admin, "-c", f"DROP DATABASE IF EXISTS {self.db} WITH (FORCE)"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        shutil.rmtree(self.work, ignore_errors=True)


# ---- the oracle: README "Commission rules" and "Adjustments", nothing of settle's code ----

def read_rules(path):
    with open(path) as f:
        return [dict(line=i, seller=r["seller_id"], cat=r["category"], cur=r["currency"],
                     rate=int(r["rate_bps"] or 0), fixed=int(r["fixed_minor"] or 0),
                     mn=int(r["min_minor"] or 0), mx=int(r["max_minor"] or 0), eff=r["effective_from"])
                for i, r in enumerate(csv.DictReader(f), start=2)]


def round_half_even(n, d):
    q, r = divmod(n, d)
    if 2 * r > d or (2 * r == d and q % 2 == 1):
        q += 1
    return q


def split(rules, seller, cat, cur, date, base):
    """(commission, seller share, rule line): the most specific rule (seller, then category, then
    currency named), the latest effective on the date among equals."""
    best = None
    for r in rules:
        if r["eff"] > date or (r["seller"] and r["seller"] != seller) or (r["cat"] and r["cat"] != cat) \
                or (r["cur"] and r["cur"] != cur):
            continue
        key = (bool(r["seller"]), bool(r["cat"]), bool(r["cur"]), r["eff"])
        if best is None or key > best[0]:
            best = (key, r)
    r = best[1]
    c = max(round_half_even(base * r["rate"], 10000) + r["fixed"], r["mn"])
    if r["mx"] > 0:
        c = min(c, r["mx"])
    c = min(max(c, 0), base)
    return c, base - c, r["line"]


def business_date(ts):
    return datetime.datetime.fromisoformat(ts).astimezone(TZ).date().isoformat()


def oracle(t, upto=None, quiet=False):
    """The problems found, each a line. upto: the dates to check (those whose runs ended, with
    the late refunds read on them), default all; quiet: no table."""
    problems = []
    strict = upto is None  # every date run: no WeChat order may still be held
    upto = set(t.dates if upto is None else upto)
    last = max(upto)
    say = (lambda *a: None) if quiet else print
    rules = {f: read_rules(f) for _, f in t.rules_from}

    def rules_for(date):
        return [f for d, f in t.rules_from if d <= date][-1]

    orders = t.rows("SELECT order_no, seller_id, provider, provider_txn_id, currency, amount_minor::bigint AS a, "
                    "category, confirmed_at FROM orders")
    refunds = t.rows("SELECT refund_no, order_no, amount_minor::bigint AS a, created_at FROM refunds "
                     "ORDER BY created_at, refund_no")
    sellers = {r["seller_id"]: r for r in t.rows("SELECT * FROM sellers")}
    by_infinia = {r["infinia_seller_id"]: s for s, r in sellers.items() if r["infinia_seller_id"]}

    owed = defaultdict(int)  # (seller, currency) -> owed through Infinia revenue shares
    commission = defaultdict(int)
    net = defaultdict(int)
    wechat = {}  # transaction -> (share, commission, seller, order)
    items = {}
    for o in orders:
        d = business_date(o["confirmed_at"])
        if d not in upto:
            continue
        a = int(o["a"])
        refunded = sum(int(r["a"]) for r in refunds if r["order_no"] == o["order_no"] and business_date(r["created_at"]) <= d)
        rf = rules_for(d)
        c, s, line = split(rules[rf], o["seller_id"], o["category"], o["currency"], d, a - refunded)
        items[o["order_no"]] = dict(o=o, date=d, comm=c, share=s, first=(c, s), rule=f"{os.path.basename(rf)}:{line}",
                                    rules=rules[rf], left=a - refunded)
        net[o["currency"]] += a - refunded
        commission[o["currency"]] += c
        if o["provider"] == "wechatpay":
            wechat[o["provider_txn_id"]] = (s, c, o["seller_id"], o["order_no"])
        else:
            owed[(o["seller_id"], o["currency"])] += s
    for r in refunds:
        it = items.get(r["order_no"])
        rd = business_date(r["created_at"])
        if it is None or rd <= it["date"] or rd not in upto:
            continue
        amt = int(r["a"])
        if it["o"]["provider"] == "wechatpay" or amt > it["left"]:
            continue  # ignored (WeChat refunds from the sub-merchant's funds) or rejected: nothing taken back
        o = it["o"]
        c, s, _ = split(it["rules"], o["seller_id"], o["category"], o["currency"], it["date"], it["left"] - amt)
        owed[(o["seller_id"], o["currency"])] -= it["share"] - s
        commission[o["currency"]] -= it["comm"] - c
        net[o["currency"]] -= amt
        it.update(left=it["left"] - amt, share=s, comm=c)

    # (a) paysim
    saved = os.path.join(t.work, "paysim-state.json")  # kept with --keep, to read the oracle again
    if getattr(t, "paysim", None) is not None:
        with urllib.request.urlopen(t.paysim_url + "/paysim/state") as resp, open(saved, "wb") as f:
            f.write(resp.read())
    with open(saved) as f:
        state = json.load(f)
    paid = defaultdict(int)
    for rs in state["infinia"]["revenue_shares"]:
        if rs["status"] == "SUCCESS":
            cur = {"CNH": "CNY"}.get(rs["currency"], rs["currency"])  # --infinia-currencies' default
            paid[(by_infinia.get(rs["seller_id"], rs["seller_id"]), cur)] += rs["amount_minor"]

    # (c) settle status
    st = json.loads(subprocess.run([os.path.join(t.bin, "settle"), "status", "--date", last, "-o", "json"],
                                   env=t.env, capture_output=True, text=True).stdout)
    carried, why = defaultdict(int), {}
    for b in st.get("carried_balances") or []:
        carried[(b["seller_id"], b["currency"])] += b["amount_minor"]
        why[(b["seller_id"], b["currency"])] = b["last_reason"]

    # (b) reports
    settled, rs_paid, held = {}, defaultdict(int), defaultdict(int)
    late_parts = defaultdict(int)
    chain = defaultdict(dict)
    for d in sorted(os.listdir(t.reports)):
        if d not in upto:
            continue
        p = os.path.join(t.reports, d)
        with open(os.path.join(p, "orders.csv")) as f:
            for r in csv.DictReader(f):
                if r["action"] == "settle":
                    settled[r["order_no"]] = r
                elif r["action"] == "late_refund" and r["commission_minor"]:
                    late_parts[r["currency"]] += int(r["commission_minor"])
        with open(os.path.join(p, "payouts.csv")) as f:
            for r in csv.DictReader(f):
                if r["kind"] == "revenue_share" and r["state"] == "succeeded":
                    _, _, seller, cur = r["subject"].split("/")
                    rs_paid[(seller, cur)] += int(r["amount_minor"])
        for name in ("summary.csv", "sellers.csv"):
            with open(os.path.join(p, name)) as f:
                for r in csv.DictReader(f):
                    if r["balanced"] != "true":
                        problems.append(f"{d} {name}: a line does not balance: {r}")
                    if name == "sellers.csv":
                        chain[(r["seller_id"], r["currency"])][d] = r
    for k, by_date in chain.items():
        prev = 0
        for d in sorted(by_date):
            r = by_date[d]
            if int(r["carried_in_minor"]) != prev:
                problems.append(f"{k} {d}: sellers.csv carried in {r['carried_in_minor']}, the date before carried forward {prev}")
            prev = int(r["carried_forward_minor"])
    wechat_got = defaultdict(int)
    for tx in state["wechat"]["transactions"]:
        if tx["transaction_id"] not in wechat:
            continue
        s, c, seller, ono = wechat[tx["transaction_id"]]
        want = (0, c, s)
        if not strict and settled.get(ono, {}).get("state") not in (None, "paid"):
            want = (c + s, 0, 0)  # held (no sub_mchid, say): nothing moved yet (upto's dates only)
        if (tx["frozen_minor"], tx["distributed_minor"], tx["unfrozen_minor"]) != want:
            problems.append(f"paysim WeChat {tx['transaction_id']} ({ono}), {settled.get(ono, {}).get('state')} in orders.csv: frozen "
                            f"{tx['frozen_minor']}, distributed {tx['distributed_minor']} (owed the platform {c}), unfrozen "
                            f"{tx['unfrozen_minor']} (owed {s})")
        wechat_got[(seller, "CNY")] += tx["unfrozen_minor"] + (s if want[0] else 0)  # a held one's share is the seller's still
    settle_commission = defaultdict(int, late_parts)
    for ono, it in items.items():
        r = settled.get(ono)
        if r is None:
            problems.append(f"order {ono} of {it['date']} is in no orders.csv")
            continue
        if r["state"] != "rejected":
            settle_commission[r["currency"]] += int(r["commission_minor"])
        got = (int(r["commission_minor"]), int(r["seller_minor"]), r["rule"])
        if got != (*it["first"], it["rule"]):
            problems.append(f"order {ono} of {it['date']}: settle split {got}, the rules give {(*it['first'], it['rule'])}")
        if it["o"]["provider"] != "wechatpay" and (r["state"] not in ("paid", "carried") or r["reason"].startswith("held:")):
            held[(r["seller_id"], r["currency"])] += int(r["seller_minor"])
            say(f"  held: {ono} {r['state']} {r['reason']}")

    say(f"{'seller':8} {'cur':4} {'owed':>10} {'paid':>10} {'carried':>10} {'held':>8}  why carried")
    for k in sorted(set(owed) | set(paid) | set(carried)):
        say(f"{k[0]:8} {k[1]:4} {owed[k]:10} {paid[k]:10} {carried[k]:10} {held[k]:8}  {why.get(k, '')}")
        if paid[k] != rs_paid[k]:
            problems.append(f"{k}: paysim paid {paid[k]} in succeeded revenue shares, payouts.csv says {rs_paid[k]}")
        if owed[k] != paid[k] + carried[k] + held[k]:
            problems.append(f"{k}: owed {owed[k]}, paid {paid[k]} + carried {carried[k]} + held {held[k]}: "
                            f"{owed[k] - paid[k] - carried[k] - held[k]} unaccounted for")
    for cur in sorted(net):
        sellers_owed = sum(v for (_, c), v in owed.items() if c == cur) + sum(v for (_, c), v in wechat_got.items() if c == cur)
        say(f"{cur}: orders' net {net[cur]}, sellers {sellers_owed}, platform's commission {commission[cur]}, settle's {settle_commission[cur]}")
        if net[cur] - sellers_owed != commission[cur]:
            problems.append(f"{cur}: the orders' net less the sellers' {net[cur] - sellers_owed}, the commission {commission[cur]}")
        if settle_commission[cur] != commission[cur]:
            problems.append(f"{cur}: settle's reports give commission {settle_commission[cur]}, the rules {commission[cur]}")
    return problems


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default="bin", help="directory of the settle and paysim binaries (make build)")
    ap.add_argument("--pg-url", default="postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable",
                    help="an administrative URL of the PostgreSQL server to create the trial's database on")
    ap.add_argument("--keep", action="store_true", help="keep the database, the work directory and its reports")
    args = ap.parse_args()
    for b in ("settle", "paysim"):
        if not os.access(os.path.join(args.bin, b), os.X_OK):
            print(f"monthtrial: no {b} in {args.bin}: make build first", file=sys.stderr)
            return 2
    t = Trial(args)
    try:
        print(f"dates {t.dates[0]} to {t.dates[-1]}; work directory {t.work}")
        t.seed()
        t.start_paysim()
        t.nights()
        problems = oracle(t)
    finally:
        t.close(args.keep)
    for p in problems:
        print("PROBLEM:", p)
    print("every minor unit accounted for" if not problems else f"{len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
