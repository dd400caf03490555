//! Steps on the v16 -> v17 migration notes.

use cucumber::then;

use super::Step;
use crate::migration;
use crate::world::{ctx, Rig};

#[then("the migration notes hold for this device")]
async fn migration_holds(w: &mut Rig) -> Step {
    let rows = migration::parse(&std::fs::read_to_string(
        ctx().root.join("fixtures/migration/v16-v17.toml"),
    )?)?;
    let tree = w.obs()?.tree();
    let device = migration::Device::from_tree(&w.main_topic, &tree);
    let (table, ok) = migration::table(&migration::verify(&rows, &tree, &device));
    if !ok {
        w.expect(
            "the migration notes hold for this device".into(),
            None,
            "every row holds".into(),
        );
        w.saw(table.clone());
        fail!("migration notes do not hold:\n{table}");
    }
    Ok(())
}
