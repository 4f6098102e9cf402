"""A seeded synthetic labelled corpus for the local DAG: short business texts over 8 Reuters-style topics.

``write_synthetic(path, n_docs=400, seed=7)`` writes JSONL lines ``{"doc_id", "text", "labels"}``. Each
document has one topic (about 20% have two: e.g. ``crude`` + ``ship``), 3-6 sentences drawn from the
topic's templates filled with its vocabulary, plus some topic-neutral business sentences, so a classifier
has to find the topical words. Deterministic for a given seed. This is *not* an evaluation of real-world
quality (see docs/benchmarks.md for Reuters-21578); it gives the local run real labels to learn.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

TOPICS: dict[str, dict[str, list[str]]] = {
    "earn": {
        "t": ["{co} reported quarterly net profit of {n} mln dlrs, up from {m} mln a year earlier.",
              "{co} said earnings per share rose to {d} dlrs in the {q} quarter.",
              "The board of {co} declared a quarterly dividend of {d} cts per share, payable next month.",
              "{co} expects full-year revenue of about {n} mln dlrs and higher operating income.",
              "Net income at {co} fell to {m} mln dlrs as sales margins narrowed in the {q} quarter.",
              "{co} posted a loss of {d} dlrs per share compared with a profit last year."],
        "w": ["profit", "dividend", "earnings", "shareholders", "revenue", "net income", "quarter"],
    },
    "acq": {
        "t": ["{co} agreed to acquire {co2} for {n} mln dlrs in cash and stock.",
              "{co} said it completed the takeover of {co2} after shareholders approved the merger.",
              "{co2} received a tender offer from {co} valued at {d} dlrs a share.",
              "Regulators cleared the proposed merger of {co} and {co2}.",
              "{co} raised its stake in {co2} to {p} pct and may seek control of the company.",
              "The acquisition gives {co} a larger share of the market, the company said."],
        "w": ["merger", "acquisition", "stake", "takeover", "tender offer", "buyout"],
    },
    "crude": {
        "t": ["Crude oil prices rose to {d} dlrs a barrel after OPEC agreed to cut output.",
              "{co} raised its posted price for West Texas Intermediate crude by {d} dlrs a barrel.",
              "OPEC ministers meet next week to discuss production quotas and oil prices.",
              "Oil output in the North Sea reached {n} thousand barrels per day last month.",
              "Refinery demand for crude weakened as stocks of petroleum products rose.",
              "The energy ministry said crude exports would fall by {p} pct this year."],
        "w": ["crude", "oil", "barrel", "OPEC", "refinery", "petroleum", "output"],
    },
    "grain": {
        "t": ["The Agriculture Department estimated the wheat crop at {n} mln bushels.",
              "Corn and soybean exports rose {p} pct as demand from importers increased.",
              "Farmers expect a larger harvest of grain after heavy rains in the plains.",
              "The government tendered for {n} thousand tonnes of wheat for shipment next month.",
              "Maize stocks held by the board fell to {n} thousand tonnes at the end of the season.",
              "Export subsidies for barley and wheat were approved by the commission."],
        "w": ["wheat", "corn", "grain", "harvest", "tonnes", "crop", "bushels"],
    },
    "money-fx": {
        "t": ["The dollar fell against the yen and the mark in nervous currency trading.",
              "The central bank intervened to support the currency on foreign exchange markets.",
              "Dealers said the dollar could test {d} yen if the bank does not intervene.",
              "Sterling rose to {d} dlrs as traders bought the currency ahead of the data.",
              "Finance ministers pledged to stabilise exchange rates at current levels.",
              "The bank drained liquidity from the money market through currency swaps."],
        "w": ["dollar", "yen", "currency", "exchange rates", "intervention", "money market"],
    },
    "interest": {
        "t": ["The central bank cut its discount rate by half a point to {d} pct.",
              "Banks lowered their prime lending rate to {d} pct from {p} pct.",
              "Interest rates are expected to rise as inflation pressure builds, economists said.",
              "The Federal Reserve left its key rate unchanged at the policy meeting.",
              "Money market rates eased after the bank added reserves to the system.",
              "Mortgage rates fell to {d} pct, the lowest level this year."],
        "w": ["interest rates", "prime rate", "discount rate", "basis points", "reserves", "lending"],
    },
    "trade": {
        "t": ["The trade deficit widened to {n} mln dlrs as imports outpaced exports.",
              "Officials threatened tariffs on imports of semiconductors and steel.",
              "Negotiators met to resolve the trade dispute over market access for goods.",
              "Exports rose {p} pct while imports fell, narrowing the trade gap.",
              "The government accused its partner of unfair trade practices and protectionism.",
              "A new trade agreement lowers duties on manufactured goods."],
        "w": ["trade deficit", "tariffs", "imports", "exports", "protectionism", "trade surplus"],
    },
    "ship": {
        "t": ["Port workers went on strike, halting shipping at the main container terminal.",
              "Freight rates for bulk carriers rose as vessels were delayed at the canal.",
              "The tanker was loading cargo at the port when the collision occurred.",
              "Shipowners said {n} vessels were waiting to berth at the harbour.",
              "The shipping line ordered {m} new container ships from the yard.",
              "Insurance rates for tankers in the gulf were raised after an attack on a vessel."],
        "w": ["vessel", "tanker", "port", "shipping", "cargo", "freight", "harbour"],
    },
}

# pairs that co-occur in real newswire (a second label for ~20% of documents)
PAIRS = [("crude", "ship"), ("grain", "ship"), ("money-fx", "interest"), ("trade", "money-fx"),
         ("acq", "earn"), ("grain", "trade"), ("crude", "trade")]

COMPANIES = ["Acme Corp", "Globex Inc", "Initech", "Northwind Traders", "Contoso Ltd", "Fabrikam",
             "Umbrella Holdings", "Stark Industries", "Wayne Enterprises", "Tyrell Corp", "Vandelay Imports",
             "Oceanic Lines", "Prairie Mills", "Harbor Bancorp", "Sterling Energy", "Pacific Grain Co"]
NEUTRAL = ["The company said the figures were preliminary and subject to review.",
           "A spokesman declined to comment further on the matter.",
           "Analysts said the announcement was in line with market expectations.",
           "The statement was issued in {city} on {day}.",
           "Further details will be released at a press conference next week.",
           "Officials said the situation would be reviewed again at the end of the month."]
CITIES = ["London", "New York", "Tokyo", "Frankfurt", "Chicago", "Rotterdam", "Singapore", "Houston"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]


def _fill(template: str, rng: random.Random) -> str:
    co, co2 = rng.sample(COMPANIES, 2)
    return template.format(co=co, co2=co2, n=rng.randint(5, 900), m=rng.randint(1, 400),
                           d=f"{rng.uniform(0.1, 40):.2f}", p=rng.randint(2, 60),
                           q=rng.choice(["first", "second", "third", "fourth"]),
                           city=rng.choice(CITIES), day=rng.choice(DAYS))


def generate(n_docs: int = 400, seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    names = sorted(TOPICS)
    out = []
    for i in range(n_docs):
        if rng.random() < 0.2:
            labels = list(rng.choice(PAIRS))
        else:
            labels = [names[i % len(names)]]
        sentences = []
        for lab in labels:
            k = rng.randint(2, 4) if len(labels) == 1 else rng.randint(1, 3)
            sentences += [_fill(t, rng) for t in rng.sample(TOPICS[lab]["t"], k)]
            if rng.random() < 0.5:
                w = rng.choice(TOPICS[lab]["w"])
                sentences.append(f"Market participants focused on {w} again this week.")
        sentences += [_fill(s, rng) for s in rng.sample(NEUTRAL, rng.randint(1, 2))]
        rng.shuffle(sentences)
        out.append({"doc_id": f"syn-{seed}-{i:05d}", "text": " ".join(sentences), "labels": sorted(labels)})
    return out


def write_synthetic(path: str | Path, n_docs: int = 400, seed: int = 7) -> Path:
    """Write the synthetic labelled JSONL to ``path`` (parents created); returns the path."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(p.suffix + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for rec in generate(n_docs, seed):
            fh.write(json.dumps(rec) + "\n")
    tmp.replace(p)
    return p
