//! API types of the local engine: playbook runs, their sources, inventories and options.
