"""Two validation.json files of the same sets, point by point: python compare.py OLD NEW

Prints the largest difference in each per-point number, each dataset's check and
fine-tune times in NEW, and the held-out mdf metrics of both."""
import json, sys
old = json.load(open(sys.argv[1])); new = json.load(open(sys.argv[2]))
def points(d): return {(e["name"], p["suite"], p["entity"]): p for e in d["datasets"] for p in e["points"]}
a, b = points(old), points(new)
common = sorted(set(a) & set(b))
for key in ("vanilla_rate", "mdf_shift", "random_shift", "raw_shift", "actual_shift"):
    diffs = [abs(a[k][key] - b[k][key]) for k in common if a[k].get(key) is not None and b[k].get(key) is not None]
    print(f"{key:14s} points {len(diffs):4d}  max |diff| {max(diffs):.2e}  (rate units)")
for e in new["datasets"]:
    print(f"  {e['name']:24s} check {e['check_seconds']:6.1f}s  fine-tune {e['finetune']['seconds']:6.1f}s  ratio {e['cost_ratio']:.2f}")
print("summary cost", new["summary"]["cost_ratio"]); print("machine", new["machine"])
def num(x): return round(x, 4) if isinstance(x, float) else x
o, m = old["summary"]["held_out"]["mdf"], new["summary"]["held_out"]["mdf"]
print("held-out mdf metrics, OLD -> NEW:", {k: (num(o[k]), num(m[k])) for k in m if k in o})
