"""Wire protocols: a parser (bytes to items) and a device emulator (items to bytes) each."""
