"""A visitor's rights and the browser side of privacy: export and erasure of everything the
engine holds about a visitor, allow-listed personal fields, signed single-use tokens that carry
a visit across the company's own domains, and the chat session kept with the visit."""
