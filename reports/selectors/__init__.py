"""The report figures, one module per report family: one aggregate query each (GROUP BY in the
database, never a loop over cards). Import from the module that owns a name.

Every selector takes `reseller_id`: the reseller a scoped staff user is limited to (or the one an
unscoped user filtered on). The admin passes the staff user's own reseller whatever the request
says, so a scoped user cannot widen a report by editing the URL.
"""
