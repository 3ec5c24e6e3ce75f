"""Full-size check of vpersona.data.wvs.load_wvs: a 97,220 x 600 file in the official layout (random codes)."""
import resource, sys, time, warnings
from pathlib import Path
import numpy as np, pandas as pd

out = Path(sys.argv[1]); fmt = sys.argv[2]
path = out / f"big.{fmt}"
if not path.exists():
    rng = np.random.default_rng(0)
    n, countries = 97_220, ["SWE", "JPN", "MAR", "NGA", "PAK", "USA", "DEU", "BRA"]
    cols = {"version": ["6-0-0"] * n, "B_COUNTRY_ALPHA": rng.choice(countries, n),
            "D_INTERVIEW": np.arange(n) + 10**8, "W_WEIGHT": rng.uniform(0.3, 2.5, n).round(4),
            "S018": np.full(n, 0.9)}
    for q in range(1, 591):
        cols[f"Q{q}"] = rng.integers(-2, 5, n).astype("int32")
    cols["H_URBRURAL"] = rng.integers(1, 3, n)
    df = pd.DataFrame(cols)
    t = time.time()
    if fmt == "csv": df.to_csv(path, index=False)
    else:
        import pyreadstat
        (pyreadstat.write_sav if fmt == "sav" else pyreadstat.write_dta)(df, str(path))
    print(f"wrote {path} ({path.stat().st_size/1e6:.0f} MB) in {time.time()-t:.0f}s", flush=True)
    sys.exit(0)
from vpersona.data.wvs import load_wvs
rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.time()
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    s = load_wvs(path, not_asked="exclude")
dt = time.time() - t
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(f"{fmt}: {len(s.responses)} respondents x {len(s.items)} items in {dt:.1f}s; peak RSS {rss/1024:.0f} MB "
      f"(before load {rss0/1024:.0f} MB); Survey frames {(s.responses.memory_usage(deep=True).sum()+s.missing.memory_usage(deep=True).sum())/1e6:.0f} MB")
