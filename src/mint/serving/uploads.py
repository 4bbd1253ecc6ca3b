"""Uploaded audio: read into memory within the size limit, checked, and handed to the pipeline as a
named in-memory file (nothing is written to disk by us; the multipart parser's spool file is closed,
which deletes it, as soon as the bytes are read)."""

from __future__ import annotations

import io
from dataclasses import dataclass

from fastapi import UploadFile

from mint.audio.decode import audio_info


class UploadProblem(Exception):
    """A request the server refuses: an HTTP status and the reason shown to the client."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclass(frozen=True)
class Upload:
    data: bytes
    filename: str

    def source(self, max_seconds: float) -> io.BytesIO:
        """The audio as a seekable in-memory file named after the upload (for error messages), after
        checking from its header that it decodes and is not longer than `max_seconds`."""
        stream = io.BytesIO(self.data)
        stream.name = f"upload {self.filename!r}"
        info = audio_info(stream)
        if info.duration > max_seconds:
            raise UploadProblem(
                413,
                f"file: {self.filename!r} holds {info.duration:.1f} s of audio; the limit is {max_seconds:g} s",
            )
        stream.seek(0)
        return stream


async def read_upload(file: UploadFile | None, max_bytes: int) -> Upload:
    if file is None:
        raise UploadProblem(422, "file: no audio uploaded; send it as the multipart form field 'file'")
    name = file.filename or "upload"
    try:
        data = await file.read(max_bytes + 1)
    finally:
        await file.close()
    if len(data) > max_bytes:
        raise UploadProblem(413, f"file: {name!r} is larger than the limit of {max_bytes} bytes")
    if not data:
        raise UploadProblem(422, f"file: {name!r} is empty (0 bytes); expected audio data")
    return Upload(data, name)
