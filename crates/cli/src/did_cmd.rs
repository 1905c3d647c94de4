//! `warden did show`: the DID document of a did:key.

use crate::registry::parse_did;
use anyhow::Result;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum Command {
    /// Print the DID document (JSON) of an Ed25519 did:key.
    ///
    /// Exit code: 0, or 1 for a malformed DID.
    Show {
        /// The did:key, e.g. did:key:z6Mk….
        did: String,
    },
}

pub fn run(cmd: Command) -> Result<u8> {
    let Command::Show { did } = cmd;
    let did = parse_did(&did)?;
    println!("{}", serde_json::to_string_pretty(&did.document())?);
    Ok(0)
}
