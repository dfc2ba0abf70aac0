"""funding.exports: every CSV download quotes formula triggers, keeps plain numbers, starts with a BOM."""

import csv
import io
from datetime import date
from decimal import Decimal

import pytest

from funding.exports import UTF8_BOM, csv_cell, csv_download, csv_text


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("=HYPERLINK(\"http://evil\",\"x\")", "'=HYPERLINK(\"http://evil\",\"x\")"),
        ("+1+1", "'+1+1"),
        ("-1+1", "'-1+1"),
        ("-cmd|' /C calc'!A0", "'-cmd|' /C calc'!A0"),
        ("@SUM(A1:A2)", "'@SUM(A1:A2)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("-", "'-"),
        ("-12.00x", "'-12.00x"),
        ("- 12", "'- 12"),
        # A cell that is only a number cannot be a formula: negative amounts stay numbers.
        ("-12.00", "-12.00"),
        ("-3", "-3"),
        ("12.00", "12.00"),
        ("Shanghai =Example", "Shanghai =Example"),
        ("上海示例", "上海示例"),
        ("", ""),
        (None, ""),
        (Decimal("-12.50"), "-12.50"),
        (Decimal("0.00"), "0.00"),
        (7, "7"),
        (-7, "-7"),
        (True, "true"),
        (date(2026, 11, 25), "2026-11-25"),
    ],
)
def test_cells(value, written):
    assert csv_cell(value) == written


def test_a_document_round_trips_through_a_csv_reader_with_the_quotes_in_place():
    text = csv_text(["name", "amount"], [["=1+2", Decimal("-5.00")], ['a,"b"', None]])
    assert text == "name,amount\r\n'=1+2,-5.00\r\n\"a,\"\"b\"\"\",\r\n"
    assert list(csv.reader(io.StringIO(text))) == [["name", "amount"], ["'=1+2", "-5.00"], ['a,"b"', ""]]


def test_a_download_is_utf8_with_a_byte_order_mark():
    response = csv_download("a,b\r\n上海,1\r\n", filename="x.csv")
    assert response.content == b"\xef\xbb\xbfa,b\r\n" + "上海".encode() + b",1\r\n"
    assert response.content.decode("utf-8").startswith(UTF8_BOM)
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="x.csv"'
