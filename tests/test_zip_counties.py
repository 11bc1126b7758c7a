"""The ZIP-to-county crosswalk reader (HUD USPS ZIP-COUNTY layout)."""

from __future__ import annotations

from rxradar.ingest.zip_counties import read_zip_counties

HUD = """ZIP,COUNTY,USPS_ZIP_PREF_CITY,USPS_ZIP_PREF_STATE,RES_RATIO,BUS_RATIO,OTH_RATIO,TOT_RATIO
25301,54039,CHARLESTON,WV,1,1,1,1
24701,54055,BLUEFIELD,WV,0.912,0.9,1,0.91
24701,54047,BLUEFIELD,WV,0.088,0.1,0,0.09
2134,25025,ALLSTON,MA,1,1,1,1
2530X,54039,CHARLESTON,WV,1,1,1,1
25302,5439,CHARLESTON,WV,1,1,1,1
25303,54039,CHARLESTON,WV,1.7,1,1,1
24701,54047,BLUEFIELD,WV,0.09,0.1,0,0.09
"""


def test_reads_hud_layout_keeping_split_zips_and_rejecting_bad_rows(tmp_path):
    path = tmp_path / "ZIP_COUNTY_122023.csv"
    path.write_text(HUD)
    parsed = read_zip_counties(path, path.name)
    rows = {r["zip_county"]: (r["state"], r["res_ratio"]) for r in parsed.tables["zip_counties"].to_pylist()}
    # A 4-digit ZIP lost its leading zero in a spreadsheet; a repeated pair keeps the later row.
    assert rows == {"25301|54039": ("WV", 1.0), "24701|54055": ("WV", 0.912), "24701|54047": ("WV", 0.09),
                    "02134|25025": ("MA", 1.0), "25302|05439": ("WV", 1.0)}
    problems = [(r["record_number"], r["field"], r["severity"]) for r in parsed.rejects.to_pylist()]
    # The restored leading zero is a warning, as in the registries.
    assert problems == [(4, "zip", "warning"), (5, "zip", "rejected"), (7, "res_ratio", "rejected"),
                        (8, "zip_county", "warning")]
    assert parsed.records_read == 8


def test_lower_case_headers_and_no_ratio_mean_the_whole_zip(tmp_path):
    path = tmp_path / "zip_county.csv"
    path.write_text("zip,county\n25301,54039\n")
    parsed = read_zip_counties(path, path.name)
    assert parsed.tables["zip_counties"].select(["zip", "county_fips", "res_ratio"]).to_pylist() == [
        {"zip": "25301", "county_fips": "54039", "res_ratio": 1.0}]
