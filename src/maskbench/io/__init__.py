"""Infrastructure every stage uses: errors, atomic files, locks, output-folder guards, locations, provenance."""
