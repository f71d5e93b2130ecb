"""Plots of the end-to-end benchmark (benches/e2e/main.rs): throughput against N and the
latency distributions, from target/bench/e2e.json and the latency samples beside it.

    python benches/plot.py target/bench/e2e.json docs/performance
"""
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLORS = {"limit": "tab:gray", "mxpva": "tab:blue", "peer": "tab:orange"}
LABELS = {"limit": "limit (pvxs C++)", "mxpva": "mxpva", "peer": "Python peer (grpcio + p4p)"}


def main(src, out):
    data = json.load(open(src))
    run = data["runs"][-1]
    os.makedirs(out, exist_ok=True)
    systems = [s for s in LABELS if any(r["system"] == s for r in run)]

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for s in systems:
        rs = sorted((r for r in run if r["system"] == s), key=lambda r: r["n"])
        paced = [r for r in rs if "sustained" in r]
        if paced:
            ax.plot([r["n"] for r in paced], [r["sustained"]["per_s"] for r in paced], "o-",
                    color=COLORS[s], label=f"{LABELS[s]}: sustained events/s (every one delivered)")
        ax.plot([r["n"] for r in rs], [r["flood"]["delivered_per_s"] for r in rs], "s--",
                color=COLORS[s], alpha=0.6, label=f"{LABELS[s]}: flood, updates/s delivered")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("N (PVs, all monitored)")
    ax.set_ylabel("per second")
    ax.set_title("Update throughput against N (loopback, 2 CPUs)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "throughput.svg"))

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.5), sharey=True)
    here = os.path.dirname(src)
    for ax, rate in zip(axes, (1000, 10000)):
        for s in systems:
            path = os.path.join(here, f"lat-{s}-{rate}.txt")
            if not os.path.exists(path):
                continue
            v = sorted(float(x) for x in open(path) if x.strip())
            if not v:
                continue
            # The complementary CDF shows the tail: fraction of updates slower than x.
            step = max(1, len(v) // 2000)
            xs = v[::step] + [v[-1]]
            ys = [1 - i / len(v) for i in range(0, len(v), step)] + [1 / len(v)]
            ax.plot(xs, ys, color=COLORS[s], label=LABELS[s])
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.axvline(2000, color="red", lw=0.8, ls=":", label="2 ms goal (p99)")
        ax.axhline(0.01, color="black", lw=0.5, ls=":")
        ax.set_title(f"{rate} updates/s over {data['lat_n']} PVs")
        ax.set_xlabel("source time -> client receipt (us)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("fraction of updates slower")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "latency.svg"))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
