from typing import Annotated

from marshmallow import validate
from skywarden.tools import tool


@tool(scopes=["words"])
async def word_count(text: Annotated[str, "The text to count", validate.Length(min=1)]) -> int:
    """Count the words in a text."""
    return len(text.split())
