"""What several components share: errors, storage access, atomic outputs, images."""
