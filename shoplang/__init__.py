"""Understanding shoppers' language, shared by the server (insights) and the clients (assistant).

Neither side imports the other: this package depends on neither `server` nor `clients`.
- `catalogue`: the catalogue format v2 (pydantic), validated on load with errors that
  name the product and the field.
- `lang`: general shopping language in Chinese and English (what is asked, kinds of
  products, colours, regions, quantities, health claims), for any shop.
- `understand`: one reading of a comment (question or not, products named or pointed at,
  what is asked) from a room's catalogue or its registered product names.
- `evaluation`, `evaluate`: the evaluation shops (evals/shops/) and a scorer that judges
  replies from their text alone (`python -m barrage.shoplang.evaluate score SET REPLIES`).
- `convert_v1`: a v2 catalogue written in the assistant's first format.
"""
