import httpx
import scipy
from report import report
from sample_data import POINTS
from scipy import stats

report(scipy)
report(httpx)
fit = stats.linregress([x for x, _ in POINTS], [y for _, y in POINTS])
request = httpx.Request("GET", "https://example.invalid/fit", params={"slope": f"{fit.slope:.1f}"})
print(f"fitted slope {fit.slope:.1f}; would send {request.method} {request.url}")
print("Environment launch module executed successfully")
