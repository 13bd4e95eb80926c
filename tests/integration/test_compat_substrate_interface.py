"""substrate-interface (the unmodified PyPI client) against a real dev node.

Each test is one thing a Python user of the chain does: read chain properties and storage, sign and
submit transfers, read blocks and events, subscribe. Senders: //Alice (plus //Eve to trigger a
storage change, fresh keys for ed25519 and faucet users); //Charlie and //Dave belong to other
modules.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from substrateinterface import Keypair, KeypairType, SubstrateInterface
from substrateinterface.exceptions import SubstrateRequestException

from tests.integration.conftest import UNIT, NodeProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

ED = 10**15
DRIP = 100_000 * UNIT
GENESIS_ENDOWMENT = 10_000_000 * UNIT

ALICE = Keypair.create_from_uri("//Alice")
BOB = Keypair.create_from_uri("//Bob")
EVE = Keypair.create_from_uri("//Eve")
DEV_NAMES = ("Alice", "Bob", "Charlie", "Dave", "Eve", "Ferdie")


@pytest.fixture(scope="module")
def si(dev_node: NodeProcess) -> Iterator[SubstrateInterface]:
    client = SubstrateInterface(url=dev_node.ws_url)
    yield client
    client.close()


def free_of(si: SubstrateInterface, address: str, block_hash: str | None = None) -> int:
    return int(
        si.query("System", "Account", [address], block_hash=block_hash).value["data"]["free"]
    )


def event_ids(receipt: Any) -> list[tuple[str, str]]:
    return [(e.value["module_id"], e.value["event_id"]) for e in receipt.triggered_events]


def transfer_call(
    si: SubstrateInterface, dest: str, value: int, fn: str = "transfer_keep_alive"
) -> Any:
    return si.compose_call("Balances", fn, {"dest": dest, "value": value})


def submit(si: SubstrateInterface, call: Any, signer: Keypair, **kwargs: Any) -> Any:
    wait = {"wait_for_inclusion": True}
    if kwargs.pop("finalized", False):
        wait = {"wait_for_finalization": True}
    xt = si.create_signed_extrinsic(call=call, keypair=signer, **kwargs)
    return si.submit_extrinsic(xt, **wait)


# ---- reading -----------------------------------------------------------------------------------


def test_properties_describe_the_cai_token(si: SubstrateInterface) -> None:
    assert si.chain == "Cuckoo Development"
    assert si.token_symbol == "CAI"
    assert si.token_decimals == 18
    assert si.ss58_format == 42
    assert si.name == "cuckoo-node"
    assert si.version


def test_dev_accounts_are_endowed_at_genesis(si: SubstrateInterface) -> None:
    genesis = si.get_block_hash(0)
    for name in DEV_NAMES:
        address = Keypair.create_from_uri(f"//{name}").ss58_address
        info = si.query("System", "Account", [address], block_hash=genesis).value
        assert info["data"]["free"] == GENESIS_ENDOWMENT, name
        assert info["nonce"] == 0
        assert info["providers"] >= 1


def test_unknown_account_reads_as_default(si: SubstrateInterface) -> None:
    nobody = Keypair.create_from_seed("0x" + secrets.token_hex(32))
    info = si.query("System", "Account", [nobody.ss58_address]).value
    assert info["nonce"] == 0
    assert info["data"]["free"] == 0


def test_query_map_lists_every_dev_account_once(si: SubstrateInterface) -> None:
    rows = {
        k.value: v.value for k, v in si.query_map("System", "Account", page_size=2, max_results=500)
    }
    for name in DEV_NAMES:
        assert Keypair.create_from_uri(f"//{name}").ss58_address in rows, name
    assert all(v["data"]["free"] >= ED for v in rows.values())


def test_constants_are_read_from_metadata(si: SubstrateInterface) -> None:
    assert si.get_constant("Balances", "ExistentialDeposit").value == ED
    assert si.get_constant("Faucet", "DripAmount").value == DRIP
    assert si.get_constant("Faucet", "DripPeriod").value == 10
    assert si.get_constant("System", "BlockHashCount").value > 0
    assert si.get_constant("Faucet", "Enabled").value is True


def test_nonce_from_account_nonce_api_matches_storage(si: SubstrateInterface) -> None:
    stored = si.query("System", "Account", [ALICE.ss58_address]).value["nonce"]
    assert si.get_account_nonce(ALICE.ss58_address) == stored
    api = si.runtime_call("AccountNonceApi", "account_nonce", [ALICE.ss58_address]).value
    assert api == stored


def test_payment_info_has_weight_v2_and_a_fee(si: SubstrateInterface) -> None:
    info = si.get_payment_info(transfer_call(si, BOB.ss58_address, UNIT), ALICE)
    assert set(info["weight"]) == {"ref_time", "proof_size"}
    assert info["weight"]["ref_time"] > 0
    assert info["partialFee"] > 0
    assert info["class"] == "Normal"


# ---- transactions ------------------------------------------------------------------------------


def test_transfer_included_with_the_exact_event_list(si: SubstrateInterface) -> None:
    alice_before = free_of(si, ALICE.ss58_address)
    bob_before = free_of(si, BOB.ss58_address)
    amount = 3 * UNIT
    quoted = si.get_payment_info(transfer_call(si, BOB.ss58_address, amount), ALICE)["partialFee"]
    receipt = submit(si, transfer_call(si, BOB.ss58_address, amount), ALICE)
    assert receipt.is_success, receipt.error_message
    assert event_ids(receipt) == [
        ("Balances", "Withdraw"),
        ("Balances", "Transfer"),
        ("TransactionPayment", "TransactionFeePaid"),
        ("System", "ExtrinsicSuccess"),
    ]
    fee = receipt.total_fee_amount
    assert fee == quoted > 0
    at = receipt.block_hash
    assert free_of(si, BOB.ss58_address, at) - bob_before == amount
    assert alice_before - free_of(si, ALICE.ss58_address, at) == amount + fee
    transfer = next(e for e in receipt.triggered_events if e.value["event_id"] == "Transfer")
    assert transfer.value["attributes"] == {
        "from": ALICE.ss58_address,
        "to": BOB.ss58_address,
        "amount": amount,
    }


def test_mortal_transfer_reaches_finality(si: SubstrateInterface) -> None:
    receipt = submit(
        si,
        transfer_call(si, BOB.ss58_address, UNIT, "transfer_allow_death"),
        ALICE,
        era={"period": 32},
        finalized=True,
    )
    assert receipt.is_success, receipt.error_message
    assert receipt.finalized
    number = si.get_block_number(receipt.block_hash)
    finalized = si.get_block_number(si.get_chain_finalised_head())
    assert finalized >= number
    block = si.get_block(receipt.block_hash)
    mine = [
        x for x in block["extrinsics"] if x.value.get("extrinsic_hash") == receipt.extrinsic_hash
    ]
    assert len(mine) == 1
    assert mine[0].value["era"] != "00"  # the mortal era travels in the extrinsic


def test_overdrawn_transfer_fails_with_a_named_module_error(si: SubstrateInterface) -> None:
    nonce_before = si.get_account_nonce(ALICE.ss58_address)
    receipt = submit(si, transfer_call(si, BOB.ss58_address, 10**36), ALICE)
    assert not receipt.is_success
    assert receipt.error_message["type"] == "Module"
    assert receipt.error_message["name"] == "InsufficientBalance"
    assert ("System", "ExtrinsicFailed") in event_ids(receipt)
    assert receipt.total_fee_amount > 0  # a failed dispatch still pays
    assert si.get_account_nonce(ALICE.ss58_address) == nonce_before + 1


def test_ed25519_account_can_receive_and_send(si: SubstrateInterface) -> None:
    ed = Keypair.create_from_seed("0x" + secrets.token_hex(32), crypto_type=KeypairType.ED25519)
    assert submit(si, transfer_call(si, ed.ss58_address, 50 * UNIT), ALICE).is_success
    bob_before = free_of(si, BOB.ss58_address)
    receipt = submit(si, transfer_call(si, BOB.ss58_address, 7 * UNIT), ed)
    assert receipt.is_success, receipt.error_message
    assert free_of(si, BOB.ss58_address, receipt.block_hash) - bob_before == 7 * UNIT
    assert si.get_account_nonce(ed.ss58_address) == 1
    assert free_of(si, ed.ss58_address) == 43 * UNIT - receipt.total_fee_amount


def test_forged_signature_is_refused_with_1010(si: SubstrateInterface) -> None:
    xt = si.create_signed_extrinsic(
        call=transfer_call(si, BOB.ss58_address, 1), keypair=ALICE, signature="0x" + "22" * 64
    )
    with pytest.raises(SubstrateRequestException) as info:
        si.submit_extrinsic(xt, wait_for_inclusion=True)
    err = info.value.args[0]
    assert err["code"] == 1010
    assert "bad signature" in err["data"]


def test_stale_nonce_is_refused_with_1010(si: SubstrateInterface) -> None:
    if si.get_account_nonce(ALICE.ss58_address) == 0:  # run alone: make a used nonce first
        remark = si.compose_call("System", "remark", {"remark": "0x01"})
        assert submit(si, remark, ALICE).is_success
    nonce = si.get_account_nonce(ALICE.ss58_address)
    assert nonce > 0
    xt = si.create_signed_extrinsic(
        call=transfer_call(si, BOB.ss58_address, 1), keypair=ALICE, nonce=nonce - 1
    )
    with pytest.raises(SubstrateRequestException) as info:
        si.submit_extrinsic(xt, wait_for_inclusion=True)
    err = info.value.args[0]
    assert err["code"] == 1010
    assert "outdated" in err["data"]


def test_faucet_drip_is_free_for_a_fresh_account(si: SubstrateInterface) -> None:
    fresh = Keypair.create_from_mnemonic(Keypair.generate_mnemonic())
    assert free_of(si, fresh.ss58_address) == 0
    receipt = submit(si, si.compose_call("Faucet", "drip", {}), fresh)
    assert receipt.is_success, receipt.error_message
    ids = event_ids(receipt)
    assert ("Faucet", "Dripped") in ids
    assert ("Balances", "Withdraw") not in ids
    assert receipt.total_fee_amount == 0
    assert free_of(si, fresh.ss58_address, receipt.block_hash) == DRIP
    # the new account can now pay for an ordinary transfer
    bob_before = free_of(si, BOB.ss58_address)
    sent = submit(si, transfer_call(si, BOB.ss58_address, 1_000 * UNIT), fresh)
    assert sent.is_success, sent.error_message
    assert sent.total_fee_amount > 0
    assert free_of(si, BOB.ss58_address, sent.block_hash) - bob_before == 1_000 * UNIT
    assert (
        free_of(si, fresh.ss58_address, sent.block_hash)
        == DRIP - 1_000 * UNIT - sent.total_fee_amount
    )
    # a second drip within the period is refused by the pool
    again = si.create_signed_extrinsic(call=si.compose_call("Faucet", "drip", {}), keypair=fresh)
    with pytest.raises(SubstrateRequestException) as info:
        si.submit_extrinsic(again, wait_for_inclusion=True)
    assert info.value.args[0]["code"] == 1010


def test_sudo_force_set_balance(si: SubstrateInterface) -> None:
    target = Keypair.create_from_seed("0x" + secrets.token_hex(32))
    inner = si.compose_call(
        "Balances", "force_set_balance", {"who": target.ss58_address, "new_free": 1234 * UNIT}
    )
    receipt = submit(si, si.compose_call("Sudo", "sudo", {"call": inner}), ALICE)
    assert receipt.is_success, receipt.error_message
    sudid = [e.value for e in receipt.triggered_events if e.value["event_id"] == "Sudid"]
    assert len(sudid) == 1
    assert sudid[0]["module_id"] == "Sudo"
    assert "Ok" in sudid[0]["attributes"]["sudo_result"]
    assert free_of(si, target.ss58_address, receipt.block_hash) == 1234 * UNIT


def test_sudo_by_a_non_key_account_fails(si: SubstrateInterface) -> None:
    inner = si.compose_call(
        "Balances", "force_set_balance", {"who": BOB.ss58_address, "new_free": UNIT}
    )
    receipt = submit(si, si.compose_call("Sudo", "sudo", {"call": inner}), EVE)
    assert not receipt.is_success
    assert receipt.error_message["name"] == "RequireSudo"
    assert free_of(si, BOB.ss58_address) > UNIT


# ---- blocks, events, runtime API --------------------------------------------------------------


def test_get_block_one_decodes_its_timestamp_inherent(si: SubstrateInterface) -> None:
    block = si.get_block(block_number=1)
    assert block["header"]["number"] == 1
    assert block["header"]["parentHash"] == si.get_block_hash(0)
    calls = [
        (x.value["call"]["call_module"], x.value["call"]["call_function"])
        for x in block["extrinsics"]
    ]
    assert calls[0] == ("Timestamp", "set")


def test_header_and_digest_decode(si: SubstrateInterface) -> None:
    head = si.get_block_header(finalized_only=False)["header"]
    assert head["number"] >= 1
    assert si.get_block_hash(head["number"]) == head["hash"]
    kinds = [next(iter(log.value)) for log in head["digest"]["logs"]]
    assert kinds[0] == "PreRuntime"
    assert kinds[-1] == "Seal"
    engine, _ = head["digest"]["logs"][0].value["PreRuntime"]
    assert bytes.fromhex(engine[2:]) == b"aura"


def test_get_events_at_a_transfer_block(si: SubstrateInterface) -> None:
    receipt = submit(
        si, si.compose_call("System", "remark_with_event", {"remark": "0xc0ffee"}), ALICE
    )
    assert receipt.is_success
    events = si.get_events(receipt.block_hash)
    phases = {(e.value["phase"], e.value["extrinsic_idx"]) for e in events}
    assert ("ApplyExtrinsic", 0) in phases  # the timestamp inherent
    remarked = [e.value for e in events if e.value["event_id"] == "Remarked"]
    assert len(remarked) == 1
    assert remarked[0]["attributes"]["sender"] == ALICE.ss58_address


def test_runtime_call_core_version(si: SubstrateInterface) -> None:
    version = si.runtime_call("Core", "version").value
    assert version["spec_name"] == "cuckoo"
    assert version["spec_version"] == si.runtime_version
    assert version["transaction_version"] == si.transaction_version


# ---- subscriptions -----------------------------------------------------------------------------


def test_subscribe_new_heads_sees_consecutive_blocks(si: SubstrateInterface) -> None:
    seen: list[int] = []

    def on_head(obj: Any, update_nr: int, _sub: str) -> Any:
        seen.append(obj["header"]["number"])
        return seen if update_nr >= 3 else None

    out = si.subscribe_block_headers(on_head)
    assert len(out) == 4
    assert out == sorted(out)
    assert out[-1] > out[0]


def test_subscribe_finalized_heads(si: SubstrateInterface) -> None:
    seen: list[int] = []

    def on_head(obj: Any, update_nr: int, _sub: str) -> Any:
        seen.append(obj["header"]["number"])
        return seen if update_nr >= 1 else None

    out = si.subscribe_block_headers(on_head, finalized_only=True)
    assert out[1] > out[0]
    assert si.get_block_number(si.get_chain_finalised_head()) >= out[1]


def test_storage_subscription_reports_a_balance_change(
    dev_node: NodeProcess, si: SubstrateInterface
) -> None:
    target = Keypair.create_from_seed("0x" + secrets.token_hex(32))
    other = SubstrateInterface(url=dev_node.ws_url)
    seen: list[int] = []

    def on_change(obj: Any, update_nr: int, _sub: str) -> Any:
        seen.append(obj.value["data"]["free"])
        if update_nr == 0:
            xt = other.create_signed_extrinsic(
                call=transfer_call(other, target.ss58_address, 5 * UNIT), keypair=EVE
            )
            other.submit_extrinsic(xt)  # no wait: the subscription itself reports the block
            return None
        return seen

    try:
        out = si.query("System", "Account", [target.ss58_address], subscription_handler=on_change)
    finally:
        other.close()
    assert out[0] == 0
    assert out[-1] == 5 * UNIT
