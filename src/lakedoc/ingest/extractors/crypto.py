"""Decryption of encrypted OOXML packages (only Excel's default password: no real password is known)."""
from __future__ import annotations

import io


def decrypt_office_default(data: bytes) -> bytes | None:
    """Decrypt an encrypted OOXML package protected only by Excel's default password
    ("VelvetSweatshop", used for write-protected workbooks). None when a real password is needed."""
    try:
        import msoffcrypto

        office = msoffcrypto.OfficeFile(io.BytesIO(data))
        office.load_key(password="VelvetSweatshop", verify_password=True)
        out = io.BytesIO()
        office.decrypt(out)
        return out.getvalue()
    except Exception:  # noqa: BLE001 - any failure means "needs a password"
        return None
