"""The shipped framework_data/ against decision 3012/QĐ-UBND, and the loader's error messages."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.core.config import DEFAULT_FRAMEWORK_DIR
from bot.core.framework import Framework, FrameworkError, load_framework
from bot.core.framework.schema import KEY_PATTERN
from bot.core.models import Unit
from bot.core.unit_words import titled

# Tasks per dimension as transcribed (NOTES.md explains every split, join and dropped duplicate).
EXPECTED_COUNTS = {
    "tham-gia": 9,
    "cong-khai-minh-bach": 8,
    "trach-nhiem-giai-trinh": 4,
    "kiem-soat-tham-nhung": 9,
    "thu-tuc-hanh-chinh": 8,
    "dich-vu-cong": 15,
    "moi-truong": 3,
    "quan-tri-dien-tu": 3,
}

DIMENSION_NAMES = [
    "Tham gia của người dân ở cấp cơ sở",
    "Công khai, minh bạch trong việc ra quyết định",
    "Trách nhiệm giải trình với người dân",
    "Kiểm soát tham nhũng trong khu vực công",
    "Thủ tục hành chính công",
    "Cung ứng dịch vụ công",
    "Quản trị môi trường",
    "Quản trị điện tử",
]

# Every "Thời gian thực hiện" phrase of the appendix, cleaned (cells split across pages joined).
DECISION_TIMINGS = {
    "Thường xuyên",
    "Trước và trong kỳ bầu cử",
    "Trước, trong và sau kỳ bầu cử",
    "Khi xây dựng các công trình công cộng",
    "Thực hiện trước, trong và sau đợt xét duyệt",
    "Theo quy định",
    "Theo yêu cầu của cá nhân, tổ chức",
    "Mỗi năm ít nhất 02 lần",
    "Theo kế hoạch hoặc đột xuất",
    "Khi có nhu cầu tuyển dụng nhân sự",
    "Theo kế hoạch; khi phát hiện các hành vi, vụ việc tham nhũng",
    "Khi bộ ngành trung ương công bố TTHC hoặc UBND tỉnh sửa đổi quy trình giải quyết TTHC",
    "Khi cá nhân, tổ chức đề nghị",
    "Thực hiện thường xuyên hoặc đột xuất",
    "Thường xuyên trong năm học và ngay khi được bố trí nguồn vốn",
    "Thường xuyên trong năm học",
    "Thường xuyên trong năm học và ngay khi được bố trí nguồn vốn và chỉ tiêu biên chế",
    "Thường xuyên ngay khi được bố trí nguồn vốn",
}

FILES = ("dimensions.yaml", "roles.yaml", "schedules.yaml", "tasks.yaml")


@pytest.fixture(scope="module")
def fw() -> Framework:
    return load_framework(DEFAULT_FRAMEWORK_DIR)


# ─────────────────────────────── the shipped data ───────────────────────────────


def test_all_eight_dimensions_in_order(fw: Framework) -> None:
    dims = sorted(fw.dimensions.values(), key=lambda d: d.number)
    assert [d.number for d in dims] == list(range(1, 9))
    assert [d.name for d in dims] == DIMENSION_NAMES
    assert set(fw.dimensions) == set(EXPECTED_COUNTS)
    assert all(0 < len(d.short) <= 24 and d.short_en for d in dims)


def test_task_count_per_dimension(fw: Framework) -> None:
    counts = {key: 0 for key in EXPECTED_COUNTS}
    for task in fw.tasks.values():
        counts[task.dimension] += 1
    assert counts == EXPECTED_COUNTS
    assert len(fw.tasks) == sum(EXPECTED_COUNTS.values()) == 59


def test_tasks_follow_the_decisions_dimension_order(fw: Framework) -> None:
    numbers = [fw.dimensions[t.dimension].number for t in fw.tasks.values()]
    assert numbers == sorted(numbers)


SPOT_CHECKS: list[dict[str, Any]] = [
    {
        "key": "thong-tin-tuyen-truyen-chinh-sach-den-nguoi-dan",
        "title": "Thông tin cho dân về chính sách, tình hình, lãnh đạo các cấp",
        "sub_dimension": "Tri thức công dân",
        "roles": {"commune_committee", "village_head"},
        "supervisor": "UBND cấp huyện",
        "timing": "Thường xuyên",
        "schedule": "monthly",
        "fragment": "công việc mà người dân có quyền được biết, được bàn",
        "methods": 4,
        "task_items": 2,
    },
    {
        "key": "cong-khai-viec-quan-trong-de-dan-ban",
        "title": "Công khai việc quan trọng để dân biết, bàn, giám sát",
        "sub_dimension": "Cơ hội tham gia",
        "roles": {"commune_committee", "village_head"},
        "supervisor": "UBND cấp huyện",
        "timing": "Thường xuyên",
        "schedule": "monthly",
        "fragment": "để người dân được biết, bàn bạc, quyết định, giám sát",
        "methods": 4,
        "task_items": 1,
    },
    {
        "key": "tuyen-truyen-bau-cu",
        "title": "Tuyên truyền bầu cử đại biểu Quốc hội, HĐND, Trưởng thôn",
        "sub_dimension": "Cơ hội tham gia",
        "roles": {"district_committee", "commune_committee", "village_head"},
        "supervisor": "UBND cấp huyện",
        "timing": "Trước và trong kỳ bầu cử",
        "schedule": "election_before_during",
        "fragment": "bầu cử Trưởng thôn tại địa phương",
        "methods": 4,
        "task_items": 1,
    },
    {
        "key": "to-chuc-bau-truong-thon",
        "title": "Tổ chức bầu Trưởng thôn đúng quy định",
        "sub_dimension": "Chất lượng bầu cử",
        "roles": {"commune_committee", "village_head"},
        "supervisor": "UBND cấp huyện",
        "timing": "Trước, trong và sau kỳ bầu cử",
        "schedule": "election_full",
        "fragment": "Tổ chức bầu Trưởng thôn đảm bảo đúng quy định, hướng dẫn",
        "methods": 6,
        "task_items": 1,
    },
    {
        "key": "giam-sat-thi-cong-cong-trinh-cong-cong",
        "title": "Giám sát tiến độ, chất lượng công trình công cộng",
        "sub_dimension": "Đóng góp tự nguyện",
        "roles": {"people_inspection_board", "community_supervision_board"},
        "supervisor": "UBND cấp huyện",
        "timing": "Khi xây dựng các công trình công cộng",
        "schedule": "public_works",
        "fragment": "Kiểm tra, giám sát tiến độ, chất lượng xây công trình",
        "methods": 3,
        "task_items": 1,
    },
    {
        "key": "cong-khai-danh-sach-ho-ngheo",
        "title": "Xét duyệt, công khai danh sách hộ nghèo, cận nghèo",
        "sub_dimension": "Công khai, minh bạch danh sách hộ nghèo",
        "roles": {"commune_committee", "village_head"},
        "supervisor": "UBND cấp huyện",
        "timing": "Thực hiện trước, trong và sau đợt xét duyệt",
        "schedule": "poverty_review",
        "fragment": "Công khai danh sách hộ nghèo, cận nghèo theo quy định",
        "methods": 5,
        "task_items": 4,
    },
    {
        "key": "cong-khai-ngan-sach-xa",
        "title": "Công khai dự toán, quyết toán ngân sách xã",
        "sub_dimension": "Công khai, minh bạch ngân sách cấp xã",
        "roles": {"commune_committee"},
        "supervisor": "UBND cấp huyện",
        "timing": "Theo quy định",
        "schedule": "by_regulation",
        "fragment": "dự toán, quyết toán ngân sách hàng năm của cấp xã",
        "methods": 4,
        "task_items": 1,
    },
    {
        "key": "trich-luc-trich-do-dia-chinh-truc-tuyen",
        "title": "Cung cấp trích lục, trích đo địa chính trực tuyến",
        "sub_dimension": ("Công khai, minh bạch kế hoạch sử dụng đất và bảng giá đất ở địa phương"),
        "roles": {"province_agency:van-phong-dang-ky-dat-dai", "land_registry_branch"},
        "supervisor": "Sở Tài nguyên và Môi trường",
        "timing": "Theo yêu cầu của cá nhân, tổ chức",
        "schedule": "on_request",
        "fragment": "trích lục, trích đo địa chính trên nền tảng trực tuyến",
        "methods": 3,
        "task_items": 1,
    },
    {
        "key": "tiep-cong-dan-dinh-ky",
        "title": "Tiếp công dân định kỳ, giải quyết phản ánh, kiến nghị",
        "sub_dimension": "Mức độ và hiệu quả tương tác với chính quyền địa phương",
        "roles": {"district_committee", "commune_committee", "district_citizen_reception_board"},
        "supervisor": "Thanh tra tỉnh; UBND cấp huyện",
        "timing": "Thường xuyên",
        "schedule": "monthly",
        "fragment": "Lãnh đạo tiếp công dân định kỳ",
        "methods": 2,
        "task_items": 2,
    },
    {
        "key": "doi-thoai-voi-nhan-dan",
        "title": "Gặp gỡ, đối thoại trực tiếp với Nhân dân",
        "sub_dimension": "Mức độ và hiệu quả tương tác với chính quyền địa phương",
        "roles": {"district_committee", "commune_committee", "village_head"},
        "supervisor": "UBND cấp huyện",
        "timing": "Mỗi năm ít nhất 02 lần",
        "schedule": "semiannual",
        "fragment": "Tổ chức gặp gỡ, đối thoại trực tiếp với Nhân dân địa phương",
        "methods": 1,
        "task_items": 1,
    },
    {
        "key": "thanh-tra-ngan-sach-cong-quy",
        "title": "Thanh tra, kiểm tra sử dụng ngân sách, công quỹ",
        "sub_dimension": "Kiểm soát tham nhũng trong chính quyền địa phương",
        "roles": {
            "province_agency:thanh-tra-tinh",
            "province_agency:so-tai-chinh",
            "district_committee",
            "commune_committee",
        },
        "supervisor": "Thanh tra tỉnh",
        "timing": "Thường xuyên",
        "schedule": "monthly",
        "fragment": "không thực hiện kết luận thanh tra, kiểm tra về lĩnh vực tài chính",
        "methods": 2,
        "task_items": 2,
    },
    {
        "key": "thanh-tra-giai-quyet-tthc",
        "title": "Thanh tra giải quyết TTHC ở lĩnh vực dễ nhũng nhiễu",
        "sub_dimension": "Kiểm soát tham nhũng trong cung ứng dịch vụ công",
        "roles": {"province_agency:*", "district_committee", "commune_committee"},
        "supervisor": "Các cơ quan chuyên môn tham mưu quản lý ngành, lĩnh vực",
        "timing": "Theo kế hoạch hoặc đột xuất",
        "schedule": "quarterly_plan",
        "fragment": "dễ xảy ra tình trạng nhũng nhiễu, tiêu cực",
        "methods": 1,
        "task_items": 1,
    },
    {
        "key": "khao-sat-hai-long-tthc-dich-vu-cong",
        "title": "Khảo sát hài lòng về giải quyết TTHC, dịch vụ công",
        "sub_dimension": "Kiểm soát tham nhũng trong cung ứng dịch vụ công",
        "roles": {
            "province_agency:so-noi-vu",
            "province_agency:so-giao-duc-va-dao-tao",
            "district_committee",
        },
        "supervisor": "Sở Nội vụ",
        "timing": "Thường xuyên",
        "schedule": "monthly",
        "fragment": "khảo sát đánh giá hài lòng hàng năm",
        "methods": 1,
        "task_items": 1,
    },
    {
        "key": "tuyen-dung-cong-khai-minh-bach",
        "title": "Tuyển dụng công khai, đúng quy trình, minh bạch",
        "sub_dimension": "Công bằng trong tuyển dụng nhân lực vào khu vực công",
        "roles": {"province_agency:so-noi-vu", "province_agency:*", "district_committee"},
        "supervisor": "Sở Nội vụ",
        "timing": "Khi có nhu cầu tuyển dụng nhân sự",
        "schedule": "recruitment",
        "fragment": "đảm bảo công bằng, minh bạch, cạnh tranh",
        "methods": 3,
        "task_items": 3,
    },
    {
        "key": "cong-bo-tthc-quy-trinh-noi-bo",
        "title": "Công bố TTHC, phê duyệt quy trình nội bộ giải quyết TTHC",
        "sub_dimension": "",
        "roles": None,  # enumerated agencies, checked separately
        "supervisor": "Văn phòng UBND tỉnh",
        "timing": (
            "Khi bộ ngành trung ương công bố TTHC hoặc UBND tỉnh sửa đổi quy trình giải quyết TTHC"
        ),
        "schedule": "tthc_change",
        "fragment": "Tham mưu UBND tỉnh công bố danh mục TTHC, công bố TTHC đúng quy định",
        "methods": 2,
        "task_items": 2,
    },
    {
        "key": "ho-tro-nop-ho-so-truc-tuyen",
        "title": "Hỗ trợ nộp hồ sơ, thanh toán trực tuyến, qua bưu chính",
        "sub_dimension": "",  # dimension 5 prints none (review E11)
        "roles": {"province_agency:*", "district_committee", "commune_committee"},
        "supervisor": "Các cơ quan tham mưu quản lý nhà nước về ngành, lĩnh vực",
        "timing": "Khi cá nhân, tổ chức đề nghị",
        "schedule": "on_request",
        "fragment": "qua dịch vụ bưu chính công ích, thanh toán trực tuyến",
        "methods": 1,
        "task_items": 1,
    },
    {
        "key": "cap-the-bhyt-nguoi-ngheo",
        "title": "Cấp thẻ BHYT người nghèo đúng đối tượng, kịp thời",
        "sub_dimension": "Y tế công lập",
        "roles": {
            "province_agency:bao-hiem-xa-hoi-tinh",
            "district_social_insurance",
            "province_agency:so-lao-dong-thuong-binh-va-xa-hoi",
            "district_committee",
            "commune_committee",
        },
        "supervisor": "Bảo hiểm xã hội tỉnh",
        "timing": "Thường xuyên",
        "schedule": "monthly",
        "fragment": "cấp thẻ bảo hiểm y tế người nghèo đúng đối tượng, không trùng thẻ",
        "methods": 1,
        "task_items": 2,
    },
    {
        "key": "khoang-cach-den-truong-si-so-hoc-sinh",
        "title": "Bảo đảm khoảng cách đến trường, sĩ số học sinh",
        "sub_dimension": "Giáo dục tiểu học công lập",
        "roles": {
            "province_agency:so-xay-dung",
            "district_committee",
            "district_education_office",
        },
        "supervisor": "Sở Giáo dục và Đào tạo",
        "timing": (
            "Thường xuyên trong năm học và ngay khi được bố trí nguồn vốn và chỉ tiêu biên chế"
        ),
        "schedule": "school_year",
        "fragment": "khoảng cách từ nhà đến trường, sĩ số học sinh",
        "methods": 1,
        "task_items": 1,
    },
    {
        "key": "nang-cap-duong-xa",
        "title": "Nâng cấp các tuyến đường xã",
        "sub_dimension": "Cơ sở hạ tầng căn bản",
        "roles": {"district_committee", "commune_committee"},
        "supervisor": "Sở Giao thông vận tải",
        "timing": "Thường xuyên ngay khi được bố trí nguồn vốn",
        "schedule": "funded_project",
        "fragment": "Thực hiện nâng cấp các tuyến đường xã",
        "methods": 1,
        "task_items": 1,
    },
    {
        "key": "bao-dam-an-ninh-trat-tu-khu-dan-cu",
        "title": "Bảo đảm an ninh, trật tự tại khu dân cư",
        "sub_dimension": "An ninh, trật tự tại địa bàn khu dân cư",
        "roles": {"province_agency:cong-an-tinh", "district_police", "commune_police"},
        "supervisor": "Công an tỉnh",
        "timing": "Thường xuyên",
        "schedule": "monthly",
        "fragment": "giải quyết kịp thời các điểm nóng",
        "methods": 4,
        "task_items": 1,
    },
    {
        "key": "cung-ung-nuoc-sach",
        "title": "Cung ứng nước sạch, nhất là vùng khó khăn",
        "sub_dimension": "Chất lượng nước",
        "roles": {
            "province_agency:so-nong-nghiep-va-phat-trien-nong-thon",
            "province_agency:cong-ty-co-phan-cap-nuoc-khanh-hoa",
            "district_committee",
            "commune_committee",
        },
        "supervisor": "Sở Xây dựng",
        "timing": "Thường xuyên",
        "schedule": "monthly",
        "fragment": "đặc biệt là những địa bàn khó khăn, xa trung tâm",
        "methods": 1,
        "task_items": 1,
    },
    {
        "key": "phuc-dap-qua-cong-thong-tin-dien-tu",
        "title": "Trả lời phản ánh, kiến nghị qua cổng thông tin điện tử",
        "sub_dimension": "Phúc đáp của chính quyền qua cổng thông tin điện tử",
        "roles": {"province_agency:*", "district_committee", "commune_committee"},
        "supervisor": "Sở Thông tin và Truyền thông",
        "timing": "Thường xuyên",
        "schedule": "monthly",
        "fragment": "Chuyên mục Hỏi - Đáp trên Cổng thông tin điện tử tỉnh",
        "methods": 3,
        "task_items": 1,  # one paragraph in the seed (review E16)
    },
]


@pytest.mark.parametrize("expected", SPOT_CHECKS, ids=[c["key"] for c in SPOT_CHECKS])
def test_spot_check_against_the_decision(fw: Framework, expected: dict[str, Any]) -> None:
    task = fw.tasks[expected["key"]]
    assert task.title == expected["title"]
    assert task.sub_dimension == expected["sub_dimension"]
    if expected["roles"] is not None:
        assert set(task.roles) == expected["roles"]
    assert task.supervisor == expected["supervisor"]
    assert task.timing == expected["timing"]
    assert task.schedule == expected["schedule"]
    assert any(expected["fragment"] in item for item in task.task)
    assert len(task.methods) == expected["methods"]
    assert len(task.task) == expected["task_items"]
    assert task.source.startswith("seed line")


def test_tthc_publication_goes_to_the_specialised_agencies_and_van_phong(fw: Framework) -> None:
    roles = fw.tasks["cong-bo-tthc-quy-trinh-noi-bo"].roles
    assert "province_agency:ban-quan-ly-khu-kinh-te-van-phong" in roles
    assert "province_agency:so-noi-vu" in roles
    assert "province_agency:*" not in roles  # not the companies, not the police
    assert "province_agency:cong-ty-co-phan-dien-luc-khanh-hoa" not in roles


def test_every_timing_of_the_decision_is_covered_once(fw: Framework) -> None:
    listed: list[str] = [t for rule in fw.schedules.values() for t in rule.timings]
    assert len(listed) == len(set(listed)), "a timing phrase sits under two rules"
    assert set(listed) == DECISION_TIMINGS
    used = {task.timing for task in fw.tasks.values()}
    assert used == DECISION_TIMINGS
    for task in fw.tasks.values():
        assert task.timing in fw.schedules[task.schedule].timings, task.key


def test_schedule_rules_are_the_agreed_ones(fw: Framework) -> None:
    monthly = fw.schedules["monthly"]
    assert (monthly.kind, monthly.period, monthly.due_day) == ("periodic", "monthly", 25)
    assert "Thường xuyên" in monthly.timings
    semiannual = fw.schedules["semiannual"]
    assert semiannual.due_dates == ["06-15", "12-15"]
    assert semiannual.timings == ["Mỗi năm ít nhất 02 lần"]
    assert fw.schedules["school_year"].period == "school_year"
    assert fw.schedules["on_request"].kind == "on_request"
    election = fw.schedules["election_full"]
    assert election.events == ["village_head_election"]  # seed line 61: village heads only
    assert fw.schedules["election_before_during"].events == ["election", "village_head_election"]
    phases = {p.key: (p.anchor, p.open_days, p.due_days) for p in election.phases}
    assert phases == {
        "truoc": ("start", -30, -7),
        "trong": ("start", 0, 0),
        "sau": ("end", 0, 15),
    }
    for name in (
        "poverty_review",
        "public_works",
        "recruitment",
        "election",
        "village_head_election",
        "funded_project",
        "tthc_change",
    ):
        assert name in fw.event_kinds
    assert all(rule.label for rule in fw.schedules.values())


def test_village_head_gets_posting_poor_household_and_dialogue_tasks(fw: Framework) -> None:
    keys = {task.key for task in fw.tasks_for_role("village_head")}
    assert {
        "thong-tin-tuyen-truyen-chinh-sach-den-nguoi-dan",
        "cong-khai-viec-quan-trong-de-dan-ban",
        "cong-khai-cong-trinh-can-dan-dong-gop",
        "cong-khai-danh-sach-ho-ngheo",
        "doi-thoai-voi-nhan-dan",
        "to-chuc-bau-truong-thon",
    } <= keys
    # Provincial work never lands on a village head.
    assert "cong-bo-tthc-quy-trinh-noi-bo" not in keys
    assert "phong-ngua-tham-nhung" not in keys


def test_any_agency_gets_the_tasks_of_all_agencies(fw: Framework) -> None:
    keys = {task.key for task in fw.tasks_for_role("province_agency:so-y-te")}
    assert "phong-ngua-tham-nhung" in keys  # "Các cơ quan, đơn vị, địa phương"
    assert "nang-cao-chat-luong-kham-chua-benh" not in keys  # hospitals, not the Sở


def test_task_keys_are_unique_slugs() -> None:
    raw = yaml.safe_load((DEFAULT_FRAMEWORK_DIR / "tasks.yaml").read_text(encoding="utf-8"))
    keys = [item["key"] for item in raw["tasks"]]
    assert len(keys) == len(set(keys))
    assert all(KEY_PATTERN.match(key) for key in keys)
    assert all(key.isascii() for key in keys)


def test_roles_agencies_and_supervisors_are_consistent(fw: Framework) -> None:
    levels = {"province", "district", "commune", "village"}
    for name in ("village_head", "commune_committee", "district_committee", "province_committee"):
        assert fw.roles[name].level in levels
    assert fw.roles["village_head"].name == "Trưởng thôn"
    assert fw.roles["commune_police"].level == "commune"
    assert fw.roles["district_police"].level == "district"
    assert "village_head" in fw.roles["commune_committee"].oversees
    assert "commune_committee" in fw.roles["district_committee"].oversees
    for role in fw.roles.values():
        assert set(role.oversees) <= set(fw.roles)
    assert all(KEY_PATTERN.match(key) for key in fw.agencies)
    used = {task.supervisor for task in fw.tasks.values()}
    assert used == set(fw.supervisors)  # no unused supervisor phrase
    assert fw.supervisors["UBND cấp huyện"].target == "parent_district"
    assert fw.supervisors["Thanh tra tỉnh"].agency == "thanh-tra-tinh"


def test_every_task_has_evidence_and_executors_mapped(fw: Framework) -> None:
    for task in fw.tasks.values():
        assert task.evidence, task.key
        assert task.roles and task.executors, task.key
        assert task.title == task.title.strip() and len(task.title) <= 60
        for item in [*task.task, *task.methods, *task.executors]:
            assert "<" not in item and not item.startswith("- "), (task.key, item)
            assert not item.endswith((";", ".")) or item.endswith("...)"), (task.key, item)


# ─────────────────────────────── loader errors ───────────────────────────────


def _copy_data(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    for name in FILES:
        shutil.copy(DEFAULT_FRAMEWORK_DIR / name, folder / name)
    return folder


def _read(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _write(path: Path, data: Any) -> None:
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")


def _edit_task(folder: Path, key: str, edit: Any) -> None:
    data = _read(folder / "tasks.yaml")
    for task in data["tasks"]:
        if task["key"] == key:
            edit(task)
    _write(folder / "tasks.yaml", data)


def _error(folder: Path) -> str:
    with pytest.raises(FrameworkError) as info:
        load_framework(folder)
    return str(info.value)


def test_copied_data_loads(tmp_path: Path) -> None:
    assert len(load_framework(_copy_data(tmp_path)).tasks) == 59


def test_unknown_role_names_file_task_and_field(tmp_path: Path) -> None:
    folder = _copy_data(tmp_path)
    _edit_task(folder, "cong-khai-danh-sach-ho-ngheo", lambda t: t["roles"].append("village_head2"))
    message = _error(folder)
    assert "tasks.yaml" in message
    assert "cong-khai-danh-sach-ho-ngheo" in message
    assert "roles" in message and "village_head2" in message


def test_unknown_schedule_names_file_task_and_field(tmp_path: Path) -> None:
    folder = _copy_data(tmp_path)
    _edit_task(folder, "doi-thoai-voi-nhan-dan", lambda t: t.update(schedule="weekly"))
    message = _error(folder)
    assert "tasks.yaml" in message
    assert "doi-thoai-voi-nhan-dan" in message
    assert "schedule" in message and "weekly" in message


def test_duplicate_key_names_file_task_and_field(tmp_path: Path) -> None:
    folder = _copy_data(tmp_path)
    data = _read(folder / "tasks.yaml")
    data["tasks"][5]["key"] = data["tasks"][2]["key"]
    _write(folder / "tasks.yaml", data)
    message = _error(folder)
    assert "tasks.yaml" in message
    assert data["tasks"][2]["key"] in message
    assert "`key`" in message and "duplicate" in message


def test_missing_title_names_file_task_and_field(tmp_path: Path) -> None:
    folder = _copy_data(tmp_path)
    _edit_task(folder, "cong-khai-ngan-sach-xa", lambda t: t.pop("title"))
    message = _error(folder)
    assert "tasks.yaml" in message
    assert "cong-khai-ngan-sach-xa" in message
    assert "title" in message


def test_unknown_dimension_names_file_task_and_field(tmp_path: Path) -> None:
    folder = _copy_data(tmp_path)
    _edit_task(folder, "cung-ung-nuoc-sach", lambda t: t.update(dimension="moi-truong-2"))
    message = _error(folder)
    assert "tasks.yaml" in message
    assert "cung-ung-nuoc-sach" in message
    assert "dimension" in message and "moi-truong-2" in message


def test_province_override_changes_only_what_it_names(tmp_path: Path, fw: Framework) -> None:
    override = tmp_path / "override"
    override.mkdir()
    _write(override / "schedules.yaml", {"schedules": {"monthly": {"due_day": 20}}})
    _write(
        override / "tasks.yaml",
        {"tasks": [{"key": "doi-thoai-voi-nhan-dan", "title": "Đối thoại với dân"}]},
    )
    changed = load_framework(DEFAULT_FRAMEWORK_DIR, override)

    assert changed.schedules["monthly"].due_day == 20
    assert changed.schedules["monthly"].timings == fw.schedules["monthly"].timings
    assert changed.tasks["doi-thoai-voi-nhan-dan"].title == "Đối thoại với dân"
    assert changed.tasks["doi-thoai-voi-nhan-dan"].model_dump(exclude={"title"}) == fw.tasks[
        "doi-thoai-voi-nhan-dan"
    ].model_dump(exclude={"title"})
    assert list(changed.tasks) == list(fw.tasks)
    for key, task in fw.tasks.items():
        if key != "doi-thoai-voi-nhan-dan":
            assert changed.tasks[key] == task
    for name, rule in fw.schedules.items():
        if name != "monthly":
            assert changed.schedules[name] == rule
    assert changed.roles == fw.roles and changed.dimensions == fw.dimensions


# --- the review's findings E3, E8, E10, E11, E15–E18 (framework_data/NOTES.md) ---------------


def test_judicial_access_is_supervised_by_so_tu_phap_as_line_88_prints(fw: Framework) -> None:
    """E3: line 87's supervisor/executors cells repeat line 86's complaint cells; the Sở Tư
    pháp cells of line 88 belong to "Tiếp cận dịch vụ tư pháp"."""
    task = fw.tasks["ho-tro-tiep-can-dich-vu-tu-phap"]
    assert task.supervisor == "Sở Tư pháp"
    assert task.executors == ["Sở Tư pháp", "UBND cấp huyện", "UBND cấp xã"]
    assert set(task.roles) == {
        "province_agency:so-tu-phap",
        "district_committee",
        "commune_committee",
    }
    target = fw.supervisors["Sở Tư pháp"]
    assert (target.target, target.agency) == ("agency", "so-tu-phap")
    assert target.for_level("commune").agency == "so-tu-phap"
    # The complaint-information row of line 86 keeps Thanh tra tỉnh and the reception boards.
    assert fw.tasks["cong-khai-noi-tiep-nhan-don-thu"].supervisor == "Thanh tra tỉnh"
    assert fw.tasks["phong-ngua-tham-nhung"].supervisor == "Thanh tra tỉnh"


def test_village_information_titles_say_what_differs(fw: Framework) -> None:
    """E8: T01 and T10 reach the village head in the same message; their titles must not read
    as the same job. And the wording fixes of the review's section on titles."""
    t01 = fw.tasks["thong-tin-tuyen-truyen-chinh-sach-den-nguoi-dan"].title
    t10 = fw.tasks["pho-bien-chu-truong-chinh-sach-phap-luat"].title
    assert t01 != t10 and t01.split(",")[0] != t10.split(",")[0]
    assert "lãnh đạo" in t01 and "tình hình" in t01  # line 54's own content
    assert "niêm yết" in t10 and "phát thanh" in t10  # line 70's channels
    titles = {key: fw.tasks[key].title for key in fw.tasks}
    assert (
        titles["thanh-tra-giai-quyet-tthc"] == "Thanh tra giải quyết TTHC ở lĩnh vực dễ nhũng nhiễu"
    )
    assert titles["ho-tro-nop-ho-so-truc-tuyen"].endswith("thanh toán trực tuyến, qua bưu chính")
    assert "nâng cao chất lượng giáo viên" in titles["chong-bao-luc-hoc-duong-nang-cao-doi-ngu"]
    assert titles["ve-sinh-nuoc-sach-truong-tieu-hoc"].startswith("Vệ sinh môi trường,")
    assert titles["cong-khai-danh-sach-ho-ngheo"].startswith("Xét duyệt, công khai")
    assert (
        titles["xu-ly-vu-viec-tham-nhung"]
        == "Xử lý nghiêm vụ việc tham nhũng, tuyên truyền kết quả"
    )
    # T24 and T32 ask for different proof.
    t24 = fw.tasks["cong-khai-tthc-va-tiep-nhan-phan-anh"].evidence
    t32 = fw.tasks["cong-khai-tthc-quy-trinh-giai-quyet"].evidence
    assert t24 != t32 and "phản ánh" in t24 and "quy trình" in t32


def test_online_filing_help_is_checked_quarterly_and_given_on_request(fw: Framework) -> None:
    """E10: "Chủ động tuyên truyền" (line 113) is proactive work: a quarterly check at every
    level; the help itself stays on request (timing and rule as printed)."""
    task = fw.tasks["ho-tro-nop-ho-so-truc-tuyen"]
    assert (task.timing, task.schedule) == ("Khi cá nhân, tổ chức đề nghị", "on_request")
    assert {level: fw.schedule_name(task, level) for level in fw.levels_of(task)} == {
        "agency": "quarterly",
        "district": "quarterly",
        "commune": "quarterly",
    }
    assert fw.reminded(task)
    assert not fw.reminded(fw.tasks["trich-luc-trich-do-dia-chinh-truc-tuyen"])


def test_administrative_procedure_tasks_have_no_sub_dimension(fw: Framework) -> None:
    """E11: dimension 5 prints no "Nội dung thành phần" (lines 101, 104–107, 111–114)."""
    tthc = [t for t in fw.tasks.values() if t.dimension == "thu-tuc-hanh-chinh"]
    assert len(tthc) == 8
    assert all(task.sub_dimension == "" for task in tthc)
    assert all(t.sub_dimension for t in fw.tasks.values() if t.dimension != "thu-tuc-hanh-chinh")


def test_typing_errors_of_the_seed_are_gone() -> None:
    """E15: the minimal fixes ("Đảo đảm" → "Bảo đảm", "Bảm bảo" → "Đảm bảo")."""
    text = (DEFAULT_FRAMEWORK_DIR / "tasks.yaml").read_text(encoding="utf-8")
    for typo in ("Đảo đảm", "Bảm bảo", "Chu động", "kỹ luật", "môi quan hệ", "môi trường biên"):
        assert typo not in text, typo
    assert "Bảo đảm đủ số lượng ứng cử viên để bầu cử" in text
    assert "Đảm bảo an ninh, trật tự tại khu dân cư; giải quyết kịp thời" in text


def test_portal_answers_are_one_paragraph_as_printed(fw: Framework) -> None:
    """E16: line 151's task cell is one paragraph of two sentences: one item."""
    (item,) = fw.tasks["phuc-dap-qua-cong-thong-tin-dien-tu"].task
    assert "Chuyên mục Hỏi - Đáp" in item and item.endswith(
        "gửi đến cổng/trang thông tin điện tử của cơ quan, đơn vị"
    )


def test_committee_roles_use_the_decisions_generic_terms(fw: Framework) -> None:
    """E17: "UBND cấp xã" / "UBND cấp huyện" fit a ward and a city; at a unit the unit's own
    word still shows ("UBND phường Vĩnh Hòa", never "UBND cấp phường" or "UBND xã")."""
    assert fw.role_name("commune_committee") == "UBND cấp xã"
    assert fw.role_name("district_committee") == "UBND cấp huyện"
    ward = Unit(code="22333", name="Phường Vĩnh Hòa", level="commune")
    city = Unit(code="568", name="Thành phố Nha Trang", level="district")
    assert titled(fw, "commune_committee", ward) == "UBND phường Vĩnh Hòa"
    assert titled(fw, "district_committee", city) == "UBND thành phố Nha Trang"


def test_notes_say_what_line_88_really_holds() -> None:
    """E18: only line 87's supervisor/executors/timing repeat line 86 (methods differ), and
    line 88's Sở Tư pháp cells are used, not lost."""
    notes = (DEFAULT_FRAMEWORK_DIR / "NOTES.md").read_text(encoding="utf-8")
    assert "nobody loses the task" not in notes
    assert "identical to line 86's" not in notes
    cited = set(re.findall(r"review (E\d+(?:, E\d+)*)", notes))
    cited = {finding for group in cited for finding in group.split(", ")}
    assert {"E3", "E8", "E10", "E11", "E15", "E16", "E17", "E18"} <= cited
