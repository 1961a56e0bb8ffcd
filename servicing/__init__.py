"""Card servicing after a card is made (ICD §5.7–§5.9; DOMAIN §2–§5): status from the
bureaus, bank channels' requests and PINs, replacements, lapses and BANKEVT."""
