-- Invoices (controlplane/invoices, docs/invoices.md "Speed"): one foreign key check per
-- invoice row instead of two. PostgreSQL checks a foreign key row by row (a query per inserted
-- row); the invoice job inserts 10,000 rows in one run and the two checks (tenant, partner) cost
-- more than the inserts themselves. An invoice's partner is its tenant's partner, so the pair
-- references the tenant row: that checks the tenant, the partner (tenants.partner_id references
-- partners) and, which the two single keys did not, that they belong together. Deleting a tenant
-- still deletes its invoices; a partner is deleted only once it has no tenant, hence no invoice.
CREATE UNIQUE INDEX tenants_id_partner ON tenants (id, partner_id);
ALTER TABLE tenant_invoices
    DROP CONSTRAINT tenant_invoices_partner_id_fkey,
    DROP CONSTRAINT tenant_invoices_tenant_id_fkey,
    ADD CONSTRAINT tenant_invoices_tenant_partner_fkey FOREIGN KEY (tenant_id, partner_id)
        REFERENCES tenants (id, partner_id) ON DELETE CASCADE;
