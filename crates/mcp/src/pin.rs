//! Tool pinning: a definition's hash is stored on first sight; a changed
//! definition (a rug pull) blocks the tool until an admin re-approves it.
