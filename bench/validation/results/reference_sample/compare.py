"""Self-reference sampling noise: predictions of the same held-out sets under other reference samples.

python compare.py BASE VARIANT...  (validation.json files of the same sets and fine-tunes)
Prints, per variant: Spearman/Pearson of its predicted shifts with BASE's over all points and
over the targets, and its held-out mdf metrics against the fine-tunes beside BASE's."""
import json, sys
from scipy.stats import pearsonr, spearmanr

def points(d): return {(e["name"], p["suite"], p["entity"]): p for e in d["datasets"] for p in e["points"]}
def targets(d): return {(e["name"], *e["target"].split("/", 1)) for e in d["datasets"]}
base = json.load(open(sys.argv[1])); a = points(base); t = targets(base)
keys = ("spearman", "target_spearman", "pearson", "auroc", "mae_points", "mae_logodds", "side_effect_spearman")
def metrics(d):
    m = d["summary"]["held_out"]["mdf"]
    return " ".join(f"{k} {m[k]:.3f}" for k in keys if isinstance(m.get(k), float))
print(f"{'base':<22}{metrics(base)}")
for path in sys.argv[2:]:
    d = json.load(open(path)); b = points(d)
    common = sorted(set(a) & set(b)); tc = [k for k in common if k in t]
    x = [a[k]["mdf_shift"] for k in common]; y = [b[k]["mdf_shift"] for k in common]
    print(f"{path.split('/')[-2]:<22}vs base: Spearman all {spearmanr(x, y)[0]:.3f} Pearson {pearsonr(x, y)[0]:.3f} "
          f"targets {spearmanr([a[k]['mdf_shift'] for k in tc], [b[k]['mdf_shift'] for k in tc])[0]:.3f} "
          f"({len(common)} points)")
    print(f"{'':<22}{metrics(d)}")
