"""Daily Microsoft (MSFT) share prices, 1986-03-13 to 2017-11-10: 7,983 trading days.

Prices are adjusted for splits and dividends, as in the Kaggle source, which is
why the 1986 prices are a few cents. Columns follow yfinance's single-header
CSV layout (`Date,Open,High,Low,Close,Volume`), so `apps/forecast.py` reads
this file and a yfinance download the same way.
"""

import pandas as pd

PACKAGES = ["pmdarima==2.1.1"]
SOURCE = (
    "`pmdarima.datasets.load_msft()` from the pmdarima package, which ships part of "
    "Boris Marjanovic's Kaggle dataset 'Huge Stock Market Dataset' "
    "(kaggle.com/borismarjanovic/price-volume-data-for-all-us-stocks-etfs)."
)
LICENCE = "Kaggle dataset: CC0 1.0 (public domain); pmdarima: MIT."
FILES = {"msft.csv": "MSFT daily open/high/low/close/volume, 1986-2017 (pmdarima)"}


def build(data_dir):
    from pmdarima.datasets import load_msft

    prices = load_msft()
    prices["Date"] = pd.to_datetime(prices["Date"]).dt.strftime("%Y-%m-%d")
    prices = prices[["Date", "Open", "High", "Low", "Close", "Volume"]]
    prices.to_csv(data_dir / "msft.csv", index=False)
