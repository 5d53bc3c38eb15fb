enum _PlaceholderSluiceReplica {}
