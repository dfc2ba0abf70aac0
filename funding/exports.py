"""CSV exports: the one way every download (console reports, audit trail, API statement) is written.

Spreadsheet formula injection (OWASP "CSV Injection"): a cell whose text starts with = + - @, a tab or a
carriage return may be run as a formula by Excel, LibreOffice or Google Sheets when the file is opened. Such
a cell is written with a single quote in front, which spreadsheets show as text and never evaluate.

One exception, decided on the cell's content rather than on its column: a cell that is nothing but a decimal
number ("-12.00", "-3") is left alone. A plain number cannot be a formula, and quoting it would turn a
negative amount (a return that reduces "advanced" in the daily position, a balance on the other side)
into text that no longer adds up in a spreadsheet. Anything else starting with "-" ("-1+1", "-cmd|...")
is quoted. Values are cells of their own type (Decimal, int, date) or text; None is an empty cell.

Downloads start with a UTF-8 byte order mark: Excel otherwise reads a CSV in the machine's legacy code page
and garbles Chinese names. Readers that do not expect it decode with "utf-8-sig" (Python) or skip U+FEFF.
"""

import csv
import io
import re
from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.http import HttpResponse

UTF8_BOM = "\ufeff"
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
PLAIN_NUMBER_RE = re.compile(r"-?[0-9]+(\.[0-9]+)?")
CONTENT_TYPE = "text/csv; charset=utf-8"


def csv_cell(value: Any) -> str:
    """One cell as text, with formula triggers neutralised."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return f"{value:f}"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    text = str(value)
    if text.startswith(FORMULA_TRIGGERS) and not PLAIN_NUMBER_RE.fullmatch(text):
        return "'" + text
    return text


def csv_text(header: list[str], rows: Iterable[Iterable[Any]], *, line_terminator: str = "\r\n") -> str:
    """The document (without the byte order mark): a header row, then every row, each cell made safe."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator=line_terminator)
    writer.writerow([csv_cell(name) for name in header])
    for row in rows:
        writer.writerow([csv_cell(value) for value in row])
    return buffer.getvalue()


def csv_download(text: str, *, filename: str) -> HttpResponse:
    """An attachment response: UTF-8 with a byte order mark (for Excel), text/csv, the given file name."""
    response = HttpResponse((UTF8_BOM + text).encode("utf-8"), content_type=CONTENT_TYPE)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
