"""HTTP endpoints; see API.md."""

from fastapi import APIRouter

router = APIRouter()
