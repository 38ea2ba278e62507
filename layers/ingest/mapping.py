"""Guesses for mapping an imported file's columns onto a kind's fields.

Agencies name columns in Vietnamese without diacritics (``TEN``, ``PHUONG``); the keys
here are the normalised column keys of ``validate.field_name``. A guess is only a
starting point the planner sees and can change.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from ..kinds import get_kind
from ..messages import Message
from ..store import Store
from ..wards import WARD_FIELD, Wards, has_wards, unmatched_message

ALIASES: dict[str, tuple[str, ...]] = {
    "name": ("ten", "ten_diem", "ten_co_so", "ten_mo_hinh", "ten_dv", "tendiem"),
    "code": ("ma", "ma_dvhc", "ma_phuong", "maxa", "ma_xa"),
    "ward": ("phuong", "phuong_xa", "xa_phuong", "ten_phuong", "dia_ban", "ma_phuong"),
    "status": ("trang_thai", "tinh_trang"),
    "category": ("loai", "loai_o_nhiem", "phan_loai"),
    "severity": ("muc_do", "cap_do"),
    "reported_at": ("ngay", "ngay_phat_hien", "ngay_tiep_nhan", "ngay_bao_cao"),
    "resolved_at": ("ngay_xu_ly", "ngay_hoan_thanh"),
    "description": ("mo_ta", "noi_dung", "ghi_chu"),
    "source": ("nguon", "nguon_tin"),
    "type": ("loai", "loai_diem", "phan_loai"),
    "schedule": ("lich", "lich_thu_gom", "thoi_gian"),
    "capacity": ("suc_chua", "khoi_luong", "dung_tich"),
    "operator": ("don_vi", "don_vi_thu_gom", "don_vi_quan_ly"),
    "model_type": ("loai_mo_hinh", "loai"),
    "since_year": ("nam", "nam_thanh_lap", "nam_bat_dau"),
    "households": ("so_ho", "ho_tham_gia"),
    "partner": ("to_chuc", "don_vi_phoi_hop", "doi_tac"),
    "religion": ("ton_giao",),
    "in_model": ("tham_gia", "tham_gia_mo_hinh"),
    "population": ("dan_so", "so_dan"),
}


def guess_mapping(kind: str, columns: list[str]) -> dict[str, str]:
    """Kind field → source column, for the fields a column obviously matches."""
    if kind == "generic":
        return {}
    available = list(columns)
    guess: dict[str, str] = {}
    for f in get_kind(kind).fields:
        for candidate in (f.name, *ALIASES.get(f.name, ())):
            if candidate in available:
                guess[f.name] = candidate
                available.remove(candidate)
                break
    return guess


def ward_warnings(store: Store, kind: str, mapping: Mapping[str, str],
                  distinct: Mapping[str, list[Any]]) -> list[Message]:
    """The preview's warning about ward names in the mapped column (``distinct``: each
    column's distinct values) that match no ward of the store; publishing refuses them
    rather than store a ward the filter never finds."""
    column = mapping.get(WARD_FIELD)
    if not has_wards(kind) or not column or column not in distinct:
        return []
    names = Wards.of(store).unmatched(distinct[column])
    return [unmatched_message(names)] if names else []


# Columns agencies keep a hotspot's or a point's own code in, most telling first.
KEY_NAMES = ("ma", "ma_diem", "ma_so", "ma_dinh_danh", "ma_hs", "id", "code", "objectid", "fid")


class KeyEvidence:
    """Which column most likely names each row for good (``MA``, ``MA_DIEM``, ``ID``…): one
    of the usual names, filled and unique in every row, seen chunk by chunk. Each value is
    kept as a 64-bit hash (8 bytes a row, whatever its length), so a million-row file is
    checked in a few megabytes."""

    def __init__(self, columns: Mapping[str, object]) -> None:
        """``columns``: each column's key (lower case) and its name in the chunks."""
        self.columns = {key: columns[key] for key in KEY_NAMES if key in columns}
        self.hashes: dict[str, list[np.ndarray]] = {key: [] for key in self.columns}

    def observe(self, frame: pd.DataFrame) -> None:
        for key, column in self.columns.items():
            if key not in self.hashes:
                continue
            values = frame[column]
            if pd.api.types.is_integer_dtype(values):  # whole numbers: their text is unique
                self.hashes[key].append(values.to_numpy().view(np.uint64))  # when they are
                continue
            text = values.astype(object).where(values.notna(), "").astype(str).str.strip()
            if (text == "").any():
                del self.hashes[key]  # a row without one: not a key
            else:
                self.hashes[key].append(pd.util.hash_pandas_object(text, index=False).to_numpy())

    def guess(self) -> str | None:
        for key, hashes in self.hashes.items():
            values = np.sort(np.concatenate(hashes)) if hashes else np.empty(0, np.uint64)
            if not (values[1:] == values[:-1]).any():
                return key
        return None
