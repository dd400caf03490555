//! Steps on the v16 -> v17 migration notes.

use anyhow::{bail, Result};
use cucumber::then;

use crate::migration;
use crate::world::{ctx, Rig};

#[then("the migration notes hold for this device")]
async fn migration_holds(w: &mut Rig) -> Result<()> {
    let rows = migration::parse(&std::fs::read_to_string(
        ctx().root.join("fixtures/migration/v16-v17.toml"),
    )?)?;
    let tree = w.obs()?.tree();
    let device = migration::Device::from_tree(&w.main_topic, &tree);
    let (table, ok) = migration::table(&migration::verify(&rows, &tree, &device));
    if !ok {
        bail!("migration notes do not hold:\n{table}");
    }
    Ok(())
}
