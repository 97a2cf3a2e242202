"""Understanding shoppers' language, shared by the server (insights) and the clients (assistant).

Neither side imports the other: this package depends on neither `server` nor `clients`.
- `catalogue`: the catalogue format v2 (pydantic), validated on load with errors that
  name the product and the field.
"""
