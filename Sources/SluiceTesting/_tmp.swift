enum _PlaceholderSluiceTesting {}
